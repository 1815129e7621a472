/* The embedded interpreter of a child, and `_tandem`, the C module through
 * which DFF reaches Redis and MariaDB (src/python/tandem_dff.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "build_config.h"
#include "worker.h"

#include <errno.h>
#include <libconfig.h>
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
#include "secret.h"

/* The child's one context; set by py_start(). _tandem's functions have no
 * other way to reach it. */
static struct wchild *g_ch;
static PyObject *g_call, *g_inspect, *g_invalidate, *g_backend_error, *g_command_error;

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
    MYSQL_RES *res = db_select("loading env variables",
                               "SELECT id, value, value_type FROM env_variable%s", NULL);
    if (res == NULL)
        return NULL;
    PyObject *d = PyDict_New();
    MYSQL_ROW row;
    while (d && (row = mysql_fetch_row(res)) != NULL) {
        unsigned long *len = mysql_fetch_lengths(res);
        PyObject *v = Py_BuildValue(
            "(Ns)",
            PyUnicode_DecodeUTF8(row[1] ? row[1] : "", row[1] ? (Py_ssize_t)len[1] : 0, "replace"),
            row[2] ? row[2] : "string");
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
        /* Dropped after a failure or in a forked draft run: connect again
         * rather than failing every DFF call until the next task. */
        char *err = NULL;
        g_ch->rc = rds_connect(g_ch->c, 5000, &err);
        if (g_ch->rc == NULL) {
            backend_error("redis is unavailable: %s", err ? err : "?");
            free(err);
            return NULL;
        }
    }
    return g_ch->rc;
}

/* Reply -> Python, raw like redis-py without response callbacks: strings
 * and status replies as bytes, integers as int, arrays as lists, nil as
 * None. tandem_dff.py applies DFF's conversions per command. */
static PyObject *reply_to_py(redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        return PyBytes_FromStringAndSize(r->str, (Py_ssize_t)r->len);
    case REDIS_REPLY_INTEGER:
        return PyLong_FromLongLong(r->integer);
    case REDIS_REPLY_ARRAY: {
        PyObject *l = PyList_New((Py_ssize_t)r->elements);
        for (size_t i = 0; l && i < r->elements; i++) {
            PyObject *v = reply_to_py(r->element[i]);
            if (v == NULL) {
                Py_CLEAR(l);
                break;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, v);
        }
        return l;
    }
    case REDIS_REPLY_ERROR:
        PyErr_SetString(g_command_error, r->str);
        return NULL;
    default:
        Py_RETURN_NONE;
    }
}

/* redis(cmd, *args): one command on the child's connection. Keys are built
 * in Python (no fixed-size buffer: long keys are never cut). Arguments may
 * be str, bytes, int or float. A Redis error reply raises CommandError (the
 * script's mistake); a lost connection raises BackendError. */
static PyObject *t_redis(PyObject *self, PyObject *args)
{
    (void)self;
    Py_ssize_t n = PyTuple_Size(args);
    if (n < 1 || n > 4096) {
        PyErr_SetString(PyExc_TypeError, "redis() takes a command and up to 4095 arguments");
        return NULL;
    }
    const char **av = calloc((size_t)n, sizeof(*av));
    size_t *lens = calloc((size_t)n, sizeof(*lens));
    PyObject **keep = calloc((size_t)n, sizeof(*keep));
    PyObject *out = NULL;
    if (av == NULL || lens == NULL || keep == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(args, i), *b;
        if (PyBytes_Check(o))
            b = Py_NewRef(o);
        else if (PyUnicode_Check(o))
            b = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
        else if (PyLong_Check(o) || PyFloat_Check(o)) {
            PyObject *s = PyObject_Str(o);
            b = s ? PyUnicode_AsUTF8String(s) : NULL;
            Py_XDECREF(s);
        } else {
            PyErr_Format(PyExc_TypeError,
                         "redis argument %zd: expected str, bytes, int or float, got %s", i,
                         Py_TYPE(o)->tp_name);
            goto out;
        }
        if (b == NULL)
            goto out;
        keep[i] = b;
        av[i] = PyBytes_AS_STRING(b);
        lens[i] = (size_t)PyBytes_GET_SIZE(b);
    }
    redisContext *rc = need_redis();
    if (rc == NULL)
        goto out;
    redisReply *r = redisCommandArgv(rc, (int)n, av, lens);
    if (r == NULL) {
        backend_error("redis: %s", rc->errstr);
        child_redis_broken(g_ch);
        goto out;
    }
    out = reply_to_py(r);
    freeReplyObject(r);
out:
    for (Py_ssize_t i = 0; keep && i < n; i++)
        Py_XDECREF(keep[i]);
    free(keep);
    free(av);
    free(lens);
    return out;
}

/* One SQL literal for a Python value; malloc'd. */
static char *sql_literal(MYSQL *m, PyObject *o)
{
    char *out = NULL;
    if (o == Py_None)
        return strdup("NULL");
    if (PyBool_Check(o))
        return strdup(o == Py_True ? "1" : "0");
    if (PyLong_Check(o) || PyFloat_Check(o)) {
        PyObject *s = PyObject_Str(o);
        const char *t = s ? PyUnicode_AsUTF8(s) : NULL;
        out = t ? strdup(t) : NULL;
        Py_XDECREF(s);
        return out;
    }
    if (PyUnicode_Check(o)) {
        Py_ssize_t len;
        const char *t = PyUnicode_AsUTF8AndSize(o, &len);
        return t ? db_qn(m, t, (size_t)len) : NULL;
    }
    if (PyBytes_Check(o))
        return db_qn(m, PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
    PyErr_Format(PyExc_TypeError,
                 "sql parameter: expected None, bool, int, float, str or bytes, got %s",
                 Py_TYPE(o)->tp_name);
    return NULL;
}

/* The query with each '?' outside quotes replaced by a literal. */
static char *sql_bind(MYSQL *m, const char *q, PyObject *params)
{
    size_t cap = strlen(q) + 64, len = 0;
    char *out = malloc(cap);
    Py_ssize_t np = params ? PySequence_Fast_GET_SIZE(params) : 0, used = 0;
    char quote = 0;
    if (out == NULL)
        return (char *)PyErr_NoMemory();
    for (const char *p = q; *p; p++) {
        const char *piece = p;
        char *lit = NULL;
        size_t plen = 1;
        if (quote) {
            if (*p == '\\' && p[1])
                plen = 2;
            else if (*p == quote)
                quote = 0;
        } else if (*p == '\'' || *p == '"' || *p == '`') {
            quote = *p;
        } else if (*p == '?') {
            if (used >= np) {
                PyErr_Format(PyExc_ValueError, "sql: more '?' than the %zd parameters given", np);
                free(out);
                return NULL;
            }
            lit = sql_literal(m, PySequence_Fast_GET_ITEM(params, used++));
            if (lit == NULL) {
                free(out);
                return NULL;
            }
            piece = lit;
            plen = strlen(lit);
        }
        if (len + plen + 1 > cap) {
            cap = (len + plen + 1) * 2;
            char *nb = realloc(out, cap);
            if (nb == NULL) {
                free(lit);
                free(out);
                return (char *)PyErr_NoMemory();
            }
            out = nb;
        }
        memcpy(out + len, piece, plen);
        len += plen;
        if (lit == NULL && plen == 2)
            p++;
        free(lit);
    }
    out[len] = '\0';
    if (used != np) {
        PyErr_Format(PyExc_ValueError, "sql: %zd parameters given for %zd '?'", np, used);
        free(out);
        return NULL;
    }
    return out;
}

/* sql(query, params) -> (columns, rows, affected_rows, insert_id) on the
 * child's MariaDB connection (DFF.STORE). Values come back as str or None. */
static PyObject *t_sql(PyObject *self, PyObject *args)
{
    const char *query;
    PyObject *params = NULL, *seq = NULL, *out = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "s|O", &query, &params))
        return NULL;
    if (params && params != Py_None) {
        seq = PySequence_Fast(params, "sql parameters must be a list or tuple");
        if (seq == NULL)
            return NULL;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        char *err = NULL;
        MYSQL *m = child_db(g_ch, &err);
        if (m == NULL) {
            backend_error("sql: %s", err ? err : "database unavailable");
            free(err);
            break;
        }
        char *q = sql_bind(m, query, seq);
        if (q == NULL)
            break;
        int rv = mysql_real_query(m, q, strlen(q));
        free(q);
        if (rv != 0) {
            unsigned int e = mysql_errno(m);
            if (conn_lost(e)) {
                child_db_broken(g_ch);
                if (attempt == 0)
                    continue;
                backend_error("sql: %s", "connection lost");
            } else {
                backend_error("sql: %s", mysql_error(m));
            }
            break;
        }
        MYSQL_RES *res = mysql_store_result(m);
        PyObject *cols = PyList_New(0), *rows = PyList_New(0);
        if (res) {
            unsigned int nf = mysql_num_fields(res);
            MYSQL_FIELD *f = mysql_fetch_fields(res);
            for (unsigned int i = 0; cols && i < nf; i++) {
                PyObject *name = PyUnicode_FromString(f[i].name);
                if (name == NULL || PyList_Append(cols, name) == -1)
                    Py_CLEAR(cols);
                Py_XDECREF(name);
            }
            MYSQL_ROW row;
            while (rows && (row = mysql_fetch_row(res)) != NULL) {
                unsigned long *len = mysql_fetch_lengths(res);
                PyObject *t = PyTuple_New(nf);
                for (unsigned int i = 0; t && i < nf; i++) {
                    PyObject *v = row[i]
                                      ? PyUnicode_DecodeUTF8(row[i], (Py_ssize_t)len[i], "replace")
                                      : Py_NewRef(Py_None);
                    if (v == NULL)
                        Py_CLEAR(t);
                    else
                        PyTuple_SET_ITEM(t, i, v);
                }
                if (t == NULL || PyList_Append(rows, t) == -1)
                    Py_CLEAR(rows);
                Py_XDECREF(t);
            }
            mysql_free_result(res);
        }
        if (cols && rows)
            out = Py_BuildValue("(OOKK)", cols, rows, (unsigned long long)mysql_affected_rows(m),
                                (unsigned long long)mysql_insert_id(m));
        Py_XDECREF(cols);
        Py_XDECREF(rows);
        break;
    }
    Py_XDECREF(seq);
    return out;
}

/* secret_open(sealed) / secret_seal(plain) with tandem.conf secret.key. */
static PyObject *t_secret(PyObject *args, bool seal)
{
    const char *in;
    char *out = NULL, *err = NULL;
    if (!PyArg_ParseTuple(args, "s", &in))
        return NULL;
    int rv = seal ? secret_seal(g_ch->c->secret_key, in, &out, &err)
                  : secret_open(g_ch->c->secret_key, in, &out, &err);
    if (rv == -1) {
        PyErr_Format(PyExc_ValueError, "%s", err ? err : "secret failed");
        free(err);
        return NULL;
    }
    PyObject *o = PyUnicode_DecodeUTF8(out, (Py_ssize_t)strlen(out), "replace");
    free(out);
    return o;
}

static PyObject *t_secret_open(PyObject *self, PyObject *args)
{
    (void)self;
    return t_secret(args, false);
}

static PyObject *t_secret_seal(PyObject *self, PyObject *args)
{
    (void)self;
    return t_secret(args, true);
}

static PyObject *setting_to_py(config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        return PyLong_FromLong(config_setting_get_int(s));
    case CONFIG_TYPE_INT64:
        return PyLong_FromLongLong(config_setting_get_int64(s));
    case CONFIG_TYPE_FLOAT:
        return PyFloat_FromDouble(config_setting_get_float(s));
    case CONFIG_TYPE_BOOL:
        return PyBool_FromLong(config_setting_get_bool(s));
    case CONFIG_TYPE_STRING:
        return PyUnicode_FromString(config_setting_get_string(s));
    case CONFIG_TYPE_GROUP: {
        PyObject *d = PyDict_New();
        for (int i = 0; d && i < config_setting_length(s); i++) {
            config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            PyObject *v = setting_to_py(e);
            if (v == NULL || PyDict_SetItemString(d, config_setting_name(e), v) == -1)
                Py_CLEAR(d);
            Py_XDECREF(v);
        }
        return d;
    }
    default: { /* array, list */
        PyObject *l = PyList_New(0);
        for (int i = 0; l && i < config_setting_length(s); i++) {
            PyObject *v = setting_to_py(config_setting_get_elem(s, (unsigned)i));
            if (v == NULL || PyList_Append(l, v) == -1)
                Py_CLEAR(l);
            Py_XDECREF(v);
        }
        return l;
    }
    }
}

/* custom_config() -> the `custom { ... }` group of tandem.conf as a dict
 * (DFF's CUSTOM_* config, DFF.CONFIG); {} when there is none. */
static PyObject *t_custom_config(PyObject *self, PyObject *args)
{
    config_t cf;
    (void)self;
    (void)args;
    if (g_ch->c->path[0] == '\0')
        return PyDict_New();
    config_init(&cf);
    if (config_read_file(&cf, g_ch->c->path) != CONFIG_TRUE) {
        config_destroy(&cf);
        return backend_error("reading %s: %s", g_ch->c->path, config_error_text(&cf));
    }
    config_setting_t *s = config_lookup(&cf, "custom");
    PyObject *d =
        s && config_setting_type(s) == CONFIG_TYPE_GROUP ? setting_to_py(s) : PyDict_New();
    config_destroy(&cf);
    return d;
}

/* after_fork(): in a forked draft run, forget (never close: the parent
 * still talks over them) the inherited Redis and MariaDB connections. */
static PyObject *t_after_fork(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    g_ch->rc = NULL;
    g_ch->db = NULL;
    Py_RETURN_NONE;
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
    const char *func_id, *kwargs_json, *parent, *queue, *chain;
    int timeout, expires;
    struct task t;
    json_error_t je;
    char *err = NULL;
    (void)self;
    if (!PyArg_ParseTuple(args, "ssisssi", &func_id, &kwargs_json, &timeout, &parent, &queue,
                          &chain, &expires))
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
    snprintf(t.queue, sizeof(t.queue), "%s", queue[0] ? queue : "async");
    t.enq_ms = now_ms();
    if (expires > 0)
        t.expires_ms = t.enq_ms + (int64_t)expires * 1000;
    t.epoch = g_ch->epoch;
    redisContext *rc = need_redis();
    if (rc == NULL) {
        task_free(&t);
        return NULL;
    }
    /* The call chain (and root task) of the new task, read back by the
     * subtask's run for DFF's depth and circular-call checks; set before
     * the XADD so the subtask always finds it. */
    char ck[128 + ID_MAX], ttl[16];
    rds_key(ck, sizeof(ck), g_ch->c, "fchain:%s", t.id);
    snprintf(ttl, sizeof(ttl), "%d", g_ch->c->task_ttl);
    const char *cav[] = {"SET", ck, chain, "EX", ttl};
    redisReply *cr = redisCommandArgv(rc, 5, cav, NULL);
    if (cr == NULL || cr->type == REDIS_REPLY_ERROR) {
        backend_error("DFF.FUNC %s: redis: %s", func_id, cr ? cr->str : rc->errstr);
        if (cr)
            freeReplyObject(cr);
        else
            child_redis_broken(g_ch);
        task_free(&t);
        return NULL;
    }
    freeReplyObject(cr);
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
    {"env_all", t_env_all, METH_NOARGS, "env_all() -> {name: (value, value_type)}"},
    {"redis", t_redis, METH_VARARGS, "redis(cmd, *args) -> raw reply"},
    {"sql", t_sql, METH_VARARGS, "sql(query, params) -> (columns, rows, affected, insert_id)"},
    {"secret_open", t_secret_open, METH_VARARGS, "secret_open(sealed) -> plain"},
    {"secret_seal", t_secret_seal, METH_VARARGS, "secret_seal(plain) -> sealed"},
    {"custom_config", t_custom_config, METH_NOARGS, "custom_config() -> dict"},
    {"after_fork", t_after_fork, METH_NOARGS, "after_fork(): drop inherited connections"},
    {"func_call", t_func_call, METH_VARARGS,
     "func_call(func_id, kwargs_json, timeout or 0, parent_task_id, queue, chain_json, "
     "expires_s or 0) -> task id"},
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
    g_command_error = PyErr_NewExceptionWithDoc(
        "_tandem.CommandError", "Redis refused a command (e.g. WRONGTYPE).", PyExc_Exception, NULL);
    if (g_backend_error == NULL || g_command_error == NULL ||
        PyModule_AddObjectRef(m, "BackendError", g_backend_error) == -1 ||
        PyModule_AddObjectRef(m, "CommandError", g_command_error) == -1) {
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
    g_inspect = PyObject_GetAttrString(rt, "system");
    g_invalidate = PyObject_GetAttrString(rt, "invalidate");
    PyObject *r = PyObject_CallMethod(
        rt, "setup", "{s:i,s:L,s:s,s:s,s:i,s:i}", "default_timeout", ch->c->func_timeout,
        "output_cap", (long long)ch->c->output_cap, "prefix", ch->c->redis_prefix, "node",
        ch->c->node_name, "task_ttl", ch->c->task_ttl, "sync_timeout", ch->c->sync_timeout);
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
    free(r->resp_json);
    free(r->rec_json);
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
    /* 9 items; a func call adds a 10th, its record fields */
    if (res == NULL || !PyTuple_Check(res) || PyTuple_Size(res) < 9 || PyTuple_Size(res) > 10) {
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
    r->resp_json = item_str(res, 8);
    if (PyTuple_Size(res) == 10)
        r->rec_json = item_str(res, 9);
    r->cache_result = (int)PyLong_AsLong(PyTuple_GetItem(res, 7));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        r->cache_result = 0;
    }
    if (r->status == NULL)
        r->status = strdup("failure");
    Py_DECREF(res);
}

void py_call(struct wchild *ch, const struct task *t, const char *raw, const char *script_id,
             const char *fname, struct pyres *r)
{
    /* The runtime takes the kwargs from raw, which it parses anyway: None
     * spares a dump here and a parse there. */
    char *kw = raw ? NULL : json_dumps(t->kwargs, JSON_COMPACT);
    ch->cur_task = t->id;
    PyObject *res =
        PyObject_CallFunction(g_call, "sssszsL", t->id, t->func, script_id, fname,
                              raw ? NULL : (kw ? kw : "{}"), raw ? raw : "{}", (long long)t->ver);
    ch->cur_task = NULL;
    free(kw);
    take_result(res, r, t->func);
}

/* System tasks (__sys.inspect, __sys.debug): the runtime's `system` entry
 * takes the name and the kwargs as JSON. */
void py_system(struct wchild *ch, const struct task *t, struct pyres *r)
{
    char *kw = json_dumps(t->kwargs, JSON_COMPACT);
    ch->cur_task = t->id;
    PyObject *res =
        PyObject_CallFunction(g_inspect, "sssi", t->id, t->func, kw ? kw : "{}", t->timeout);
    ch->cur_task = NULL;
    free(kw);
    take_result(res, r, t->func);
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
