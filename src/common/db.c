#include "db.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* One server: connect, session setup. NULL and *err naming `where`. */
static MYSQL *open_one(const struct tconf *c, const char *host, int port, const char *sock,
                       int timeout_s, char **err)
{
    MYSQL *m = mysql_init(NULL);
    unsigned int t = timeout_s > 0 ? (unsigned)timeout_s : 10;
    my_bool off = 0;
    char where[CONF_STR + 32];

    if (m == NULL) {
        err_set(err, "mysql_init: out of memory");
        return NULL;
    }
    if (sock)
        snprintf(where, sizeof(where), "unix:%s", sock);
    else
        snprintf(where, sizeof(where), "%s:%d", host, port);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    /* A silent reconnect would lose session state (time zone, locks). */
    mysql_options(m, MYSQL_OPT_RECONNECT, &off);
    if (sock)
        mysql_options(m, MYSQL_OPT_PROTOCOL, &(unsigned int){MYSQL_PROTOCOL_SOCKET});
    if (mysql_real_connect(m, sock ? NULL : host, c->db_user, c->db_password, c->db_name,
                           sock ? 0 : (unsigned)port, sock, 0) == NULL) {
        err_set(err, "mariadb %s: connect as %s to database %s: %s", where, c->db_user, c->db_name,
                mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    if (mysql_query(m, "SET time_zone='+00:00'") != 0 || mysql_autocommit(m, 1) != 0) {
        err_set(err, "mariadb %s: session setup: %s", where, mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

/* 1 read_only, 0 writable, -1 cannot tell (the connection is bad). */
static int read_only(MYSQL *m)
{
    if (mysql_query(m, "SELECT @@global.read_only") != 0)
        return -1;
    MYSQL_RES *r = mysql_store_result(m);
    if (!r)
        return -1;
    MYSQL_ROW row = mysql_fetch_row(r);
    int ro = row && row[0] && strcmp(row[0], "0") != 0;
    mysql_free_result(r);
    return ro;
}

MYSQL *db_connect(const struct tconf *c, int timeout_s, char **err)
{
    if (err)
        *err = NULL;
    if (c->db_socket[0])
        return open_one(c, NULL, 0, c->db_socket, timeout_s, err);
    if (c->db_nhosts == 0)
        return open_one(c, c->db_host, c->db_port, NULL, timeout_s, err);
    /* A primary/replica pair: write only where read_only is off, in the
     * operator's order, so a switch of the primary (by hand or by a proxy
     * that flips read_only) is followed on the next connect. */
    char *why = NULL;
    for (int i = 0; i < c->db_nhosts; i++) {
        char host[128], *e = NULL;
        int port;
        MYSQL *m = NULL;
        if (hostport_split(c->db_hosts[i], host, sizeof host, &port) == -1)
            e = xasprintf("%s: not host:port", c->db_hosts[i]);
        else if ((m = open_one(c, host, port, NULL, timeout_s, &e)) != NULL) {
            int ro = read_only(m);
            if (ro == 0) {
                free(why);
                return m;
            }
            e = xasprintf("mariadb %s: %s", c->db_hosts[i],
                          ro == 1 ? "read_only (a replica)" : mysql_error(m));
            mysql_close(m);
        }
        char *joined = why ? xasprintf("%s; %s", why, e ? e : "?") : (e ? strdup(e) : NULL);
        free(why);
        free(e);
        why = joined;
    }
    err_set(err, "mariadb: no writable server among mysql.hosts: %s", why ? why : "none");
    free(why);
    return NULL;
}

MYSQL *db_connect_host(const struct tconf *c, const char *hostport, int timeout_s, char **err)
{
    char host[128];
    int port;
    if (err)
        *err = NULL;
    if (hostport_split(hostport, host, sizeof host, &port) == -1) {
        err_set(err, "mariadb %s: not host:port", hostport);
        return NULL;
    }
    return open_one(c, host, port, NULL, timeout_s, err);
}

bool db_is_readonly_error(unsigned int code)
{
    /* ER_OPTION_PREVENTS_STATEMENT: "running with the --read-only option" */
    return code == 1290;
}

static void discard_results(MYSQL *m)
{
    do {
        MYSQL_RES *r = mysql_store_result(m);
        if (r)
            mysql_free_result(r);
    } while (mysql_next_result(m) == 0);
}

static int run(MYSQL *m, char **err, const char *sql)
{
    if (mysql_real_query(m, sql, strlen(sql)) != 0) {
        err_set(err, "mariadb: %s (errno %u)", mysql_error(m), mysql_errno(m));
        return -1;
    }
    return 0;
}

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) == -1)
        return NULL;
    return s;
}

int db_exec(MYSQL *m, char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vfmt(fmt, ap);
    va_end(ap);
    if (sql == NULL) {
        err_set(err, "out of memory");
        return -1;
    }
    int rc = run(m, err, sql);
    free(sql);
    if (rc == 0)
        discard_results(m);
    return rc;
}

MYSQL_RES *db_query(MYSQL *m, char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *sql = vfmt(fmt, ap);
    va_end(ap);
    if (sql == NULL) {
        err_set(err, "out of memory");
        return NULL;
    }
    int rc = run(m, err, sql);
    free(sql);
    if (rc == -1)
        return NULL;
    MYSQL_RES *r = mysql_store_result(m);
    if (r == NULL) {
        if (mysql_errno(m))
            err_set(err, "mariadb: %s (errno %u)", mysql_error(m), mysql_errno(m));
        else
            err_set(err, "mariadb: statement returned no result set");
        return NULL;
    }
    return r;
}

char *db_qn(MYSQL *m, const char *s, size_t len)
{
    if (s == NULL)
        return strdup("NULL");
    char *q = malloc(2 * len + 3);
    if (q == NULL)
        return NULL;
    q[0] = '\'';
    unsigned long n = mysql_real_escape_string(m, q + 1, s, (unsigned long)len);
    q[n + 1] = '\'';
    q[n + 2] = '\0';
    return q;
}

char *db_q(MYSQL *m, const char *s)
{
    return db_qn(m, s, s ? strlen(s) : 0);
}

char *db_in_list(MYSQL *m, const char *head, const char *const *ids, size_t n, size_t *len)
{
    size_t cap = strlen(head) + 3, o = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i])
            cap += 2 * strlen(ids[i]) + 3;
    char *q = malloc(cap);
    if (q == NULL)
        return NULL;
    o = (size_t)snprintf(q, cap, "%s(", head);
    for (size_t i = 0; i < n; i++) {
        if (!ids[i])
            continue;
        if (k++)
            q[o++] = ',';
        q[o++] = '\'';
        o += mysql_real_escape_string(m, q + o, ids[i], (unsigned long)strlen(ids[i]));
        q[o++] = '\'';
    }
    if (k == 0) {
        free(q);
        return NULL;
    }
    q[o++] = ')';
    q[o] = '\0';
    *len = o;
    return q;
}

/* ---- migrations ---- */

struct mig {
    int version;
    char name[256];
};

static int mig_cmp(const void *a, const void *b)
{
    const struct mig *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ^[0-9]{3}_.*\.sql$ */
static bool mig_name(const char *n)
{
    size_t len = strlen(n);
    return len >= 8 && isdigit((unsigned char)n[0]) && isdigit((unsigned char)n[1]) &&
           isdigit((unsigned char)n[2]) && n[3] == '_' && strcmp(n + len - 4, ".sql") == 0;
}

/* Lists the migration files of dir, sorted. Two files with one version are
 * an error: which one ran would depend on readdir order. */
static int mig_list(const char *dir, struct mig **out, int *nout, char **err)
{
    DIR *d = opendir(dir);
    struct mig *v = NULL;
    int n = 0, cap = 0;
    struct dirent *de;

    if (d == NULL) {
        err_set(err, "migrations %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (!mig_name(de->d_name) || strlen(de->d_name) >= sizeof(v->name))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            struct mig *nv = realloc(v, sizeof(*v) * (size_t)cap);
            if (nv == NULL) {
                closedir(d);
                free(v);
                err_set(err, "out of memory");
                return -1;
            }
            v = nv;
        }
        v[n].version =
            (de->d_name[0] - '0') * 100 + (de->d_name[1] - '0') * 10 + (de->d_name[2] - '0');
        snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
        n++;
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof(*v), mig_cmp);
    for (int i = 1; i < n; i++)
        if (v[i].version == v[i - 1].version) {
            err_set(err, "migrations %s: %s and %s have the same version %03d", dir, v[i - 1].name,
                    v[i].name, v[i].version);
            free(v);
            return -1;
        }
    *out = v;
    *nout = n;
    return 0;
}

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(255) NOT NULL,"
    " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

/* Versions present in schema_migrations, as a bitmap over 000..999. */
static int applied_versions(MYSQL *m, bool have[1000], char **err)
{
    memset(have, 0, 1000 * sizeof(bool));
    MYSQL_RES *r = db_query(m, err, "SELECT version FROM schema_migrations");
    if (r == NULL)
        return -1;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(r)) != NULL) {
        int v = row[0] ? atoi(row[0]) : -1;
        if (v >= 0 && v < 1000)
            have[v] = true;
    }
    mysql_free_result(r);
    return 0;
}

static char *read_file(const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        fclose(f);
        err_set(err, "out of memory");
        return NULL;
    }
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, k, out);
    bool bad = ferror(f);
    fclose(f);
    fclose(out);
    if (bad) {
        err_set(err, "%s: read error", path);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Splits a migration into statements: one ends with ';' at the end of a line
 * (trailing blanks allowed); lines starting with "--" are comments. Executes
 * each in turn; an error names the file and the statement's first line. */
static int mig_apply_file(MYSQL *m, const char *path, char **err)
{
    char *text = read_file(path, err);
    if (text == NULL)
        return -1;
    size_t cap = strlen(text) + 2;
    char *stmt = malloc(cap); /* a statement is never longer than the file */
    size_t slen = 0;
    int rc = 0, lineno = 0, start_line = 0;
    char *next;

    if (stmt == NULL) {
        free(text);
        err_set(err, "out of memory");
        return -1;
    }
    for (char *line = text; line && rc == 0; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (strncmp(p, "--", 2) == 0)
            continue;
        size_t len = strlen(line);
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
            len--;
        bool end = len && line[len - 1] == ';';
        if (*p) {
            if (slen == 0)
                start_line = lineno;
            size_t k = end ? len - 1 : len;
            memcpy(stmt + slen, line, k);
            slen += k;
            stmt[slen++] = '\n';
        }
        if ((end || next == NULL) && slen > 0) {
            bool blank = true;
            for (size_t i = 0; i < slen; i++)
                if (!isspace((unsigned char)stmt[i]))
                    blank = false;
            if (!blank && mysql_real_query(m, stmt, slen) != 0) {
                err_set(err, "%s:%d: %s (errno %u)", path, start_line, mysql_error(m),
                        mysql_errno(m));
                rc = -1;
            } else if (!blank) {
                discard_results(m);
            }
            slen = 0;
        }
    }
    free(stmt);
    free(text);
    return rc;
}

int db_migrate(MYSQL *m, const char *dir, int *applied, char **err)
{
    struct mig *v = NULL;
    int n = 0, rc = -1;
    bool have[1000];
    bool locked = false;

    if (err)
        *err = NULL;
    if (applied)
        *applied = 0;
    if (mig_list(dir, &v, &n, err) == -1)
        return -1;
    if (db_exec(m, err, "%s", create_table_sql) == -1)
        goto out;

    MYSQL_RES *r = db_query(m, err, "SELECT GET_LOCK('tandem_migrate', 60)");
    if (r == NULL)
        goto out;
    MYSQL_ROW row = mysql_fetch_row(r);
    locked = row && row[0] && strcmp(row[0], "1") == 0;
    mysql_free_result(r);
    if (!locked) {
        err_set(err, "migrations: could not take lock tandem_migrate within 60 s "
                     "(another migration running?)");
        goto out;
    }
    /* Read under the lock: another node may have just applied some. */
    if (applied_versions(m, have, err) == -1)
        goto out;
    for (int i = 0; i < n; i++) {
        if (have[v[i].version])
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, v[i].name);
        log_info("applying migration %s", path);
        if (mig_apply_file(m, path, err) == -1)
            goto out;
        char *qn = db_q(m, v[i].name);
        int e = db_exec(m, err,
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (%d, %s, UTC_TIMESTAMP(3))",
                        v[i].version, qn ? qn : "''");
        free(qn);
        if (e == -1)
            goto out;
        if (applied)
            (*applied)++;
    }
    rc = 0;
out:
    if (locked) {
        /* A failed RELEASE_LOCK is harmless: the lock dies with the session. */
        if (db_exec(m, NULL, "SELECT RELEASE_LOCK('tandem_migrate')") == -1)
            log_warnx("migrations: RELEASE_LOCK failed: %s", mysql_error(m));
    }
    free(v);
    return rc;
}

int db_migrations_pending(MYSQL *m, const char *dir, int *pending, char **err)
{
    struct mig *v = NULL;
    int n = 0;
    bool have[1000];

    if (err)
        *err = NULL;
    *pending = 0;
    if (mig_list(dir, &v, &n, err) == -1)
        return -1;
    MYSQL_RES *r = db_query(m, err,
                            "SELECT COUNT(*) FROM information_schema.tables "
                            "WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'");
    if (r == NULL) {
        free(v);
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(r);
    bool exists = row && row[0] && strcmp(row[0], "0") != 0;
    mysql_free_result(r);
    if (!exists) {
        *pending = n;
        free(v);
        return 0;
    }
    if (applied_versions(m, have, err) == -1) {
        free(v);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!have[v[i].version])
            (*pending)++;
    free(v);
    return 0;
}
