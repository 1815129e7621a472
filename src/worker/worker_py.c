/* The embedded interpreter of a child, and `_tandem`, the C module through
 * which DFF reaches Redis and MariaDB (src/python/tandem_dff.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "build_config.h"
#include "worker.h"

#include <errno.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "log.h"
#include "rds.h"

/* The child's one context; set by py_start(). _tandem's functions have no
 * other way to reach it. */
static struct wchild *g_ch;
static PyObject *g_call, *g_inspect, *g_invalidate, *g_backend_error;

/* ---- _tandem ------------------------------------------------------------- */

static PyObject *backend_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static PyObject *backend_error(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    PyErr_SetString(g_backend_error, buf);
    return NULL;
}

static bool conn_lost(unsigned int e)
{
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == CR_SERVER_LOST_EXTENDED || e == ER_CONNECTION_KILLED;
}

/* Run a query on the child's connection, reconnecting once if it was lost.
 * NULL with a Python exception set on failure. */
static MYSQL_RES *db_select(const char *what, const char *fmt, const char *arg)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        char *err = NULL;
        MYSQL *m = child_db(g_ch, &err);
        if (m == NULL) {
            backend_error("%s: %s", what, err ? err : "database unavailable");
            free(err);
            return NULL;
        }
        char *q = arg ? db_q(m, arg) : NULL;
        MYSQL_RES *res = db_query(m, &err, fmt, q ? q : "");
        free(q);
        if (res)
            return res;
        unsigned int e = mysql_errno(m);
        if (conn_lost(e) && attempt == 0) {
            free(err);
            child_db_broken(g_ch);
            continue;
        }
        if (conn_lost(e))
            child_db_broken(g_ch);
        backend_error("%s: %s", what, err ? err : "query failed");
        free(err);
        return NULL;
    }
    return NULL;
}

static PyObject *t_script_fetch(PyObject *self, PyObject *args)
{
    const char *script_id;
    (void)self;
    if (!PyArg_ParseTuple(args, "s", &script_id))
        return NULL;
    MYSQL_RES *res = db_select("loading the script",
                               "SELECT code, publish_version FROM script WHERE id = %s", script_id);
    if (res == NULL)
        return NULL;
    MYSQL_ROW row = mysql_fetch_row(res);
    PyObject *out;
    if (row == NULL || row[0] == NULL) {
        out = Py_BuildValue("(OL)", Py_None, 0LL);
    } else {
        unsigned long *len = mysql_fetch_lengths(res);
        out = Py_BuildValue("(s#L)", row[0], (Py_ssize_t)len[0],
                            row[1] ? strtoll(row[1], NULL, 10) : 0LL);
    }
    mysql_free_result(res);
    return out;
}

static PyObject *t_env_all(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    MYSQL_RES *res =
        db_select("loading env variables", "SELECT id, value FROM env_variable%s", NULL);
    if (res == NULL)
        return NULL;
    PyObject *d = PyDict_New();
    MYSQL_ROW row;
    while (d && (row = mysql_fetch_row(res)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(res);
        PyObject *v =
            PyUnicode_DecodeUTF8(row[1] ? row[1] : "", row[1] ? (Py_ssize_t)len[1] : 0, "replace");
        if (v == NULL || PyDict_SetItemString(d, row[0], v) == -1) {
            Py_XDECREF(v);
            Py_CLEAR(d);
            break;
        }
        Py_DECREF(v);
    }
    mysql_free_result(res);
    return d;
}

static redisContext *need_redis(void)
{
    if (g_ch->rc == NULL) {
        backend_error("redis is unavailable");
        return NULL;
    }
    return g_ch->rc;
}

/* A command on the child's Redis connection; NULL with an exception set. */
static redisReply *redis_argv(const char *what, int argc, const char **argv, const size_t *lens)
{
    redisContext *rc = need_redis();
    if (rc == NULL)
        return NULL;
    redisReply *r = redisCommandArgv(rc, argc, argv, lens);
    if (r == NULL) {
        backend_error("%s: redis: %s", what, rc->errstr);
        child_redis_broken(g_ch);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        backend_error("%s: redis: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* DFF.CACHE key: <prefix>cache:<scope>:<key>; the scope (by default the
 * calling script, see tandem_dff.py) comes from Python. */
static void cache_key(char *buf, size_t n, const char *scope, const char *key)
{
    rds_key(buf, n, g_ch->c, "cache:%s:%s", scope[0] ? scope : "_", key);
}

static PyObject *t_cache_get(PyObject *self, PyObject *args)
{
    const char *scope, *key;
    char k[1024];
    (void)self;
    if (!PyArg_ParseTuple(args, "ss", &scope, &key))
        return NULL;
    cache_key(k, sizeof(k), scope, key);
    const char *av[] = {"GET", k};
    redisReply *r = redis_argv("DFF.CACHE.get", 2, av, NULL);
    if (r == NULL)
        return NULL;
    PyObject *out;
    if (r->type == REDIS_REPLY_STRING)
        out = PyUnicode_DecodeUTF8(r->str, (Py_ssize_t)r->len, "replace");
    else
        out = Py_NewRef(Py_None);
    freeReplyObject(r);
    return out;
}

static PyObject *t_cache_set(PyObject *self, PyObject *args)
{
    const char *scope, *key, *val;
    Py_ssize_t vlen;
    long long ex;
    char k[1024], exs[32];
    (void)self;
    if (!PyArg_ParseTuple(args, "sss#L", &scope, &key, &val, &vlen, &ex))
        return NULL;
    cache_key(k, sizeof(k), scope, key);
    snprintf(exs, sizeof(exs), "%lld", ex);
    const char *av[] = {"SET", k, val, "EX", exs};
    size_t lens[] = {3, strlen(k), (size_t)vlen, 2, strlen(exs)};
    redisReply *r = redis_argv("DFF.CACHE.set", ex > 0 ? 5 : 3, av, lens);
    if (r == NULL)
        return NULL;
    freeReplyObject(r);
    Py_RETURN_NONE;
}

static PyObject *t_cache_delete(PyObject *self, PyObject *args)
{
    const char *scope, *key;
    char k[1024];
    (void)self;
    if (!PyArg_ParseTuple(args, "ss", &scope, &key))
        return NULL;
    cache_key(k, sizeof(k), scope, key);
    const char *av[] = {"DEL", k};
    redisReply *r = redis_argv("DFF.CACHE.delete", 2, av, NULL);
    if (r == NULL)
        return NULL;
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return PyBool_FromLong(n > 0);
}

/* The timeout of func_id from the func table; the default if unknown. */
static int func_timeout(const char *func_id)
{
    MYSQL_RES *res = db_select("DFF.FUNC", "SELECT timeout FROM func WHERE id = %s", func_id);
    int t = g_ch->c->func_timeout;
    if (res == NULL) {
        PyErr_Clear(); /* the task can still run with the default */
        return t;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0]) {
        long v = strtol(row[0], NULL, 10);
        if (v >= 1 && v <= 3600)
            t = (int)v;
    }
    mysql_free_result(res);
    return t;
}

static PyObject *t_func_call(PyObject *self, PyObject *args)
{
    const char *func_id, *kwargs_json, *parent;
    int timeout;
    struct task t;
    json_error_t je;
    char *err = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "ssis", &func_id, &kwargs_json, &timeout, &parent))
        return NULL;
    if (!func_id_split(func_id, NULL, 0, NULL, 0, NULL, 0)) {
        PyErr_Format(PyExc_ValueError, "DFF.FUNC: \"%s\" is not a func id (<set>__<script>.<func>)",
                     func_id);
        return NULL;
    }
    memset(&t, 0, sizeof(t));
    t.kwargs = json_loads(kwargs_json, JSON_DECODE_ANY, &je);
    if (t.kwargs == NULL || !json_is_object(t.kwargs)) {
        json_decref(t.kwargs);
        PyErr_Format(PyExc_ValueError, "DFF.FUNC: kwargs: %s",
                     t.kwargs ? "not an object" : je.text);
        return NULL;
    }
    id_new(t.id, sizeof(t.id), "task-");
    snprintf(t.func, sizeof(t.func), "%s", func_id);
    t.origin = ORIGIN_SUBTASK;
    snprintf(t.origin_id, sizeof(t.origin_id), "%s", parent);
    t.timeout = timeout > 0 ? timeout : func_timeout(func_id);
    snprintf(t.queue, sizeof(t.queue), "async");
    t.enq_ms = now_ms();
    t.epoch = g_ch->epoch;
    redisContext *rc = need_redis();
    if (rc == NULL) {
        task_free(&t);
        return NULL;
    }
    int rv = task_enqueue(rc, g_ch->c, &t, &err);
    task_free(&t);
    if (rv == -1) {
        backend_error("DFF.FUNC %s: %s", func_id, err ? err : "enqueue failed");
        if (rc->err)
            child_redis_broken(g_ch);
        free(err);
        return NULL;
    }
    return PyUnicode_FromString(t.id);
}

static PyMethodDef tandem_methods[] = {
    {"script_fetch", t_script_fetch, METH_VARARGS,
     "script_fetch(script_id) -> (code or None, publish_version)"},
    {"env_all", t_env_all, METH_NOARGS, "env_all() -> {name: value}"},
    {"cache_get", t_cache_get, METH_VARARGS, "cache_get(func_id, key) -> str or None"},
    {"cache_set", t_cache_set, METH_VARARGS, "cache_set(func_id, key, json, expires_s or 0)"},
    {"cache_delete", t_cache_delete, METH_VARARGS, "cache_delete(func_id, key) -> bool"},
    {"func_call", t_func_call, METH_VARARGS,
     "func_call(func_id, kwargs_json, timeout or 0, parent_task_id) -> task id"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef tandem_module = {
    PyModuleDef_HEAD_INIT,
    "_tandem",
    "Tandem worker internals for DFF.",
    -1,
    tandem_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

static PyObject *PyInit__tandem(void)
{
    PyObject *m = PyModule_Create(&tandem_module);
    if (m == NULL)
        return NULL;
    g_backend_error = PyErr_NewExceptionWithDoc("_tandem.BackendError",
                                                "Redis or MariaDB is unavailable or failed.",
                                                PyExc_RuntimeError, NULL);
    if (g_backend_error == NULL ||
        PyModule_AddObjectRef(m, "BackendError", g_backend_error) == -1) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* ---- the interpreter ----------------------------------------------------- */

static char *py_err_text(void)
{
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    char *out = NULL;
    PyObject *s = val ? PyObject_Str(val) : NULL;
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "error";
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    if (asprintf(&out, "%s: %s", name, msg ? msg : "?") == -1)
        out = NULL;
    PyErr_Clear();
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return out;
}

static int config_status(PyStatus st, PyConfig *cfg, const char *what, char **err)
{
    if (!PyStatus_Exception(st))
        return 0;
    if (asprintf(err, "python %s: %s%s%s", what, st.func ? st.func : "", st.func ? ": " : "",
                 st.err_msg ? st.err_msg : "failed") == -1)
        *err = NULL;
    PyConfig_Clear(cfg);
    return -1;
}

static int add_path(PyConfig *cfg, const char *p, char **err)
{
    wchar_t *w = Py_DecodeLocale(p, NULL);
    if (w == NULL) {
        if (asprintf(err, "python: cannot decode path %s", p) == -1)
            *err = NULL;
        PyConfig_Clear(cfg);
        return -1;
    }
    PyStatus st = PyWideStringList_Append(&cfg->module_search_paths, w);
    PyMem_RawFree(w);
    return config_status(st, cfg, "module_search_paths", err);
}

int py_start(struct wchild *ch, char **err)
{
    PyConfig cfg;
    PyStatus st;

    *err = NULL;
    g_ch = ch;
    if (PyImport_AppendInittab("_tandem", PyInit__tandem) == -1) {
        *err = strdup("python: cannot register _tandem");
        return -1;
    }
    PyConfig_InitIsolatedConfig(&cfg);
    cfg.install_signal_handlers = 0; /* SIGTERM/SIGINT stay the C child's */
    cfg.site_import = 0;             /* no site: paths are set explicitly below */
    cfg.write_bytecode = 0;          /* the data dir is read-only when installed */
    cfg.parse_argv = 0;
    cfg.module_search_paths_set = 1;
    st = PyConfig_SetBytesString(&cfg, &cfg.program_name, "tandem-worker");
    if (config_status(st, &cfg, "program_name", err) == -1)
        return -1;
    st = PyConfig_SetBytesString(&cfg, &cfg.home, "/usr");
    if (config_status(st, &cfg, "home", err) == -1)
        return -1;
    if (add_path(&cfg, ch->c->python_dir, err) == -1)
        return -1;
    /* The system interpreter the worker was built against (build_config.h),
     * whatever python3 comes first on PATH. */
    char sys_paths[] = TANDEM_PYTHON_PATH, *save = NULL;
    for (char *p = strtok_r(sys_paths, ":", &save); p; p = strtok_r(NULL, ":", &save))
        if (add_path(&cfg, p, err) == -1)
            return -1;
    st = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(st)) {
        if (asprintf(err, "python init: %s%s%s", st.func ? st.func : "", st.func ? ": " : "",
                     st.err_msg ? st.err_msg : "failed") == -1)
            *err = NULL;
        return -1;
    }
    PyObject *rt = PyImport_ImportModule("tandem_runtime");
    if (rt == NULL) {
        char *e = py_err_text();
        if (asprintf(err, "python: cannot import tandem_runtime from %s: %s", ch->c->python_dir,
                     e ? e : "?") == -1)
            *err = NULL;
        free(e);
        return -1;
    }
    g_call = PyObject_GetAttrString(rt, "call");
    g_inspect = PyObject_GetAttrString(rt, "inspect_code");
    g_invalidate = PyObject_GetAttrString(rt, "invalidate");
    PyObject *r =
        PyObject_CallMethod(rt, "setup", "iL", ch->c->func_timeout, (long long)ch->c->output_cap);
    Py_DECREF(rt);
    if (g_call == NULL || g_inspect == NULL || g_invalidate == NULL || r == NULL) {
        char *e = py_err_text();
        if (asprintf(err, "python: tandem_runtime is incomplete: %s", e ? e : "?") == -1)
            *err = NULL;
        free(e);
        Py_XDECREF(r);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

void pyres_free(struct pyres *r)
{
    free(r->status);
    free(r->result_json);
    free(r->reason);
    free(r->message);
    free(r->traceback);
    free(r->output);
    free(r->data_json);
    memset(r, 0, sizeof(*r));
}

static char *item_str(PyObject *tup, Py_ssize_t i)
{
    PyObject *o = PyTuple_GetItem(tup, i);
    if (o == NULL || o == Py_None || !PyUnicode_Check(o))
        return NULL;
    /* Lone surrogates (e.g. from os.fsdecode) must not break the outcome. */
    PyObject *b = PyUnicode_AsEncodedString(o, "utf-8", "replace");
    if (b == NULL) {
        PyErr_Clear();
        return NULL;
    }
    char *s = strndup(PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return s;
}

/* Turns the runtime's answer tuple (or a Python error in the runtime
 * itself) into r. */
static void take_result(PyObject *res, struct pyres *r, const char *what)
{
    memset(r, 0, sizeof(*r));
    if (res == NULL || !PyTuple_Check(res) || PyTuple_Size(res) != 8) {
        char *e = res == NULL ? py_err_text() : strdup("bad answer from tandem_runtime");
        r->status = strdup("failure");
        r->reason = strdup("EFuncFailed");
        if (asprintf(&r->message, "%s: internal error: %s", what, e ? e : "?") == -1)
            r->message = NULL;
        free(e);
        Py_XDECREF(res);
        return;
    }
    r->status = item_str(res, 0);
    r->result_json = item_str(res, 1);
    r->reason = item_str(res, 2);
    r->message = item_str(res, 3);
    r->traceback = item_str(res, 4);
    r->output = item_str(res, 5);
    r->data_json = item_str(res, 6);
    r->cache_result = (int)PyLong_AsLong(PyTuple_GetItem(res, 7));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        r->cache_result = 0;
    }
    if (r->status == NULL)
        r->status = strdup("failure");
    Py_DECREF(res);
}

void py_call(struct wchild *ch, const struct task *t, const char *script_id, const char *fname,
             struct pyres *r)
{
    char *kw = json_dumps(t->kwargs, JSON_COMPACT);
    ch->cur_task = t->id;
    PyObject *res = PyObject_CallFunction(g_call, "sssssL", t->id, t->func, script_id, fname,
                                          kw ? kw : "{}", (long long)t->ver);
    ch->cur_task = NULL;
    free(kw);
    take_result(res, r, t->func);
}

void py_inspect(struct wchild *ch, const struct task *t, struct pyres *r)
{
    json_t *code = json_object_get(t->kwargs, "code");
    json_t *sid = json_object_get(t->kwargs, "script_id");
    const char *script_id = json_is_string(sid) ? json_string_value(sid) : "script";
    if (!json_is_string(code)) {
        memset(r, 0, sizeof(*r));
        r->status = strdup("failure");
        r->reason = strdup("EClientBadRequest");
        r->message = strdup("__sys.inspect: kwargs.code must be a string");
        return;
    }
    ch->cur_task = t->id;
    PyObject *res = PyObject_CallFunction(g_inspect, "ss#s", t->id, json_string_value(code),
                                          (Py_ssize_t)json_string_length(code), script_id);
    ch->cur_task = NULL;
    take_result(res, r, "__sys.inspect");
}

void py_invalidate(void)
{
    PyObject *r = PyObject_CallNoArgs(g_invalidate);
    if (r == NULL) {
        char *e = py_err_text();
        log_warnx("python invalidate: %s", e ? e : "?");
        free(e);
    }
    Py_XDECREF(r);
}
