/* Role transitions: logged at once, kept for `tandemctl status`, and written
 * to MariaDB's failover_event by a thread, so a slow or absent database never
 * delays a failover. Rows that cannot be written wait (bounded) and are
 * retried. */
#include "sv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "db.h"
#include "log.h"

#define QCAP ((int)(sizeof(((struct sv_events *)0)->queue) / sizeof(struct sv_event_row)))
#define RETRY_MS 2000

void sv_event(struct sv *s, const char *from, const char *to, const char *cause, int64_t epoch)
{
    struct sv_event_row row = {.at = now_ms(), .epoch = epoch};
    snprintf(row.from, sizeof(row.from), "%s", from);
    snprintf(row.to, sizeof(row.to), "%s", to);
    snprintf(row.cause, sizeof(row.cause), "%s", cause);
    log_info("transition %s -> %s (epoch %lld): %s", from, to, (long long)epoch, cause);

    pthread_mutex_lock(&s->ev.lock);
    s->ev.recent[s->ev.nrecent % SV_RECENT] = row;
    s->ev.nrecent++;
    if (s->ev.qlen == QCAP) { /* the oldest unwritten row gives way */
        s->ev.qhead = (s->ev.qhead + 1) % QCAP;
        s->ev.qlen--;
        log_warnx("failover_event backlog full: oldest row dropped (it is still in this log)");
    }
    s->ev.queue[(s->ev.qhead + s->ev.qlen) % QCAP] = row;
    s->ev.qlen++;
    pthread_cond_signal(&s->ev.cond);
    pthread_mutex_unlock(&s->ev.lock);
}

static int write_row(struct sv *s, MYSQL **m, const struct sv_event_row *r)
{
    char *err = NULL;
    if (*m == NULL) {
        *m = db_connect(&s->conf, 2, &err);
        if (*m == NULL) {
            /* once, then every minute: the backlog is retried every 2 s */
            static int64_t last_warn;
            if (last_warn == 0 || mono_ms() - last_warn >= 60000) {
                last_warn = mono_ms();
                log_warnx("failover_event: cannot reach MariaDB (rows kept and retried): %s",
                          err ? err : "?");
            }
            free(err);
            return -1;
        }
    }
    char at[40];
    sql_datetime_ms(r->at, at, sizeof(at));
    char *node = db_q(*m, s->conf.node_name), *from = db_q(*m, r->from), *to = db_q(*m, r->to),
         *cause = db_q(*m, r->cause);
    int rc = db_exec(*m, &err,
                     "INSERT INTO failover_event (node, from_state, to_state, cause, epoch, at) "
                     "VALUES (%s, %s, %s, %s, %lld, '%s')",
                     node, from, to, cause, (long long)r->epoch, at);
    free(node), free(from), free(to), free(cause);
    if (rc == -1) {
        log_warnx("failover_event insert: %s", err ? err : "?");
        free(err);
        mysql_close(*m);
        *m = NULL;
    }
    return rc;
}

int64_t sv_events_db_max_epoch(struct sv *s)
{
    pthread_mutex_lock(&s->ev.lock);
    int64_t e = s->ev.db_max_epoch;
    pthread_mutex_unlock(&s->ev.lock);
    return e;
}

/* MAX(epoch) of failover_event: the epochs ever taken, kept where a Redis
 * restored from an old snapshot cannot take them back. Read here, off the
 * failover path, so a promotion never waits on MariaDB. */
static void read_db_max(struct sv *s, MYSQL **m)
{
    char *err = NULL;
    if (*m == NULL && (*m = db_connect(&s->conf, 2, &err)) == NULL) {
        free(err);
        return;
    }
    MYSQL_RES *res = db_query(*m, &err, "SELECT COALESCE(MAX(epoch), 0) FROM failover_event");
    if (res == NULL) {
        log_warnx("failover_event: cannot read the highest epoch: %s", err ? err : "?");
        free(err);
        mysql_close(*m);
        *m = NULL;
        return;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    int64_t e = row && row[0] ? strtoll(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    pthread_mutex_lock(&s->ev.lock);
    if (e > s->ev.db_max_epoch)
        s->ev.db_max_epoch = e;
    pthread_mutex_unlock(&s->ev.lock);
}

#define DB_MAX_EVERY_MS 5000

static void *events_main(void *arg)
{
    struct sv *s = arg;
    MYSQL *m = NULL;
    int64_t last_max = 0;
    mysql_thread_init();
    pthread_mutex_lock(&s->ev.lock);
    while (!s->ev.stop || s->ev.qlen > 0) {
        if (!s->ev.stop && (last_max == 0 || mono_ms() - last_max >= DB_MAX_EVERY_MS)) {
            last_max = mono_ms();
            pthread_mutex_unlock(&s->ev.lock);
            read_db_max(s, &m);
            pthread_mutex_lock(&s->ev.lock);
            continue;
        }
        if (s->ev.qlen == 0) {
            struct timespec ts;
            mono_deadline(&ts, DB_MAX_EVERY_MS);
            pthread_cond_timedwait(&s->ev.cond, &s->ev.lock, &ts);
            continue;
        }
        struct sv_event_row row = s->ev.queue[s->ev.qhead];
        bool stopping = s->ev.stop;
        pthread_mutex_unlock(&s->ev.lock);
        int rc = write_row(s, &m, &row);
        pthread_mutex_lock(&s->ev.lock);
        if (rc == 0) {
            s->ev.qhead = (s->ev.qhead + 1) % QCAP;
            s->ev.qlen--;
        } else if (stopping) {
            break; /* exiting: the log has them */
        } else {
            struct timespec ts;
            mono_deadline(&ts, RETRY_MS);
            pthread_cond_timedwait(&s->ev.cond, &s->ev.lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->ev.lock);
    if (m)
        mysql_close(m);
    mysql_thread_end();
    return NULL;
}

int sv_events_start(struct sv *s)
{
    pthread_mutex_init(&s->ev.lock, NULL);
    s->ev.db_max_epoch = -1;
    cond_init_mono(&s->ev.cond);
    mysql_library_init(0, NULL, NULL);
    int e = pthread_create(&s->ev.thread, NULL, events_main, s);
    if (e != 0) {
        errno = e;
        log_warn("event thread");
        return -1;
    }
    return 0;
}

void sv_events_stop(struct sv *s)
{
    pthread_mutex_lock(&s->ev.lock);
    s->ev.stop = true;
    pthread_cond_signal(&s->ev.cond);
    pthread_mutex_unlock(&s->ev.lock);
    pthread_join(s->ev.thread, NULL);
}
