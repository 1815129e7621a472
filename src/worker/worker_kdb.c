/* The keeper helpers' own MariaDB connection (see struct kdb in worker.h). */
#include <mysql.h>
#include <stdlib.h>

#include "db.h"
#include "log.h"
#include "worker.h"

struct st_mysql *kdb_get(struct kdb *k, int64_t now)
{
    if (k->db || now < k->retry_mono)
        return k->db;
    char *err = NULL;
    k->db = db_connect(k->c, 5, &err);
    if (k->db &&
        db_exec(k->db, &err, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") == -1) {
        mysql_close(k->db);
        k->db = NULL;
    }
    if (!k->db) {
        if (k->fails++ == 0)
            log_warnx("%s: %s; %s until it is back", k->who, err ? err : "mariadb unavailable",
                      k->idle);
        k->retry_mono = now + backoff_ms(k->fails, 500, 30000);
    } else {
        if (k->fails)
            log_info("%s: mariadb is back", k->who);
        k->fails = 0;
    }
    free(err);
    return k->db;
}

void kdb_fail(struct kdb *k, const char *what, char *err, int64_t now)
{
    log_warnx("%s: %s: %s", k->who, what, err ? err : "error");
    free(err);
    kdb_close(k);
    k->retry_mono = now + backoff_ms(++k->fails, 500, 30000);
}

void kdb_close(struct kdb *k)
{
    if (k->db)
        mysql_close(k->db);
    k->db = NULL;
}
