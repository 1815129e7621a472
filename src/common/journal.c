/* The accept journal's INSERT (see journal.h). */
#include "journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

char *journal_insert_sql(MYSQL *m, const struct journal_row *rows, size_t *n, size_t *len)
{
    size_t take = 0, bytes = 0;
    while (take < *n && (take == 0 || bytes + strlen(rows[take].task) < JOURNAL_STMT_BYTES)) {
        bytes += strlen(rows[take].task) + strlen(rows[take].id) + strlen(rows[take].queue) + 40;
        take++;
    }
    size_t cap = 2 * bytes + 128, o;
    char *q = malloc(cap);
    if (!q)
        return NULL;
    o = (size_t)snprintf(q, cap,
                         "INSERT IGNORE INTO task_accept (id, queue, task, accepted_ms) "
                         "VALUES ");
    for (size_t i = 0; i < take; i++) {
        const char *f[3] = {rows[i].id, rows[i].queue, rows[i].task};
        q[o++] = i ? ',' : '(';
        if (i)
            q[o++] = '(';
        for (int k = 0; k < 3; k++) {
            q[o++] = '\'';
            o += mysql_real_escape_string(m, q + o, f[k], strlen(f[k]));
            q[o++] = '\'';
            q[o++] = ',';
        }
        o += (size_t)snprintf(q + o, cap - o, "%lld)", (long long)rows[i].accepted_ms);
    }
    *n = take;
    *len = o;
    return q;
}

size_t journal_write(MYSQL *m, const struct journal_row *rows, size_t n, char **err)
{
    size_t done = 0;
    while (done < n) {
        size_t take = n - done, len = 0;
        char *q = journal_insert_sql(m, rows + done, &take, &len);
        if (!q) {
            err_set(err, "out of memory");
            break;
        }
        int rc = mysql_real_query(m, q, len);
        free(q);
        if (rc != 0) {
            err_set(err, "%s (errno %u)", mysql_error(m), mysql_errno(m));
            break;
        }
        done += take;
    }
    return done;
}
