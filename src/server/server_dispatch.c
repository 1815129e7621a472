/* Sync calls without blocking an HTTP thread: the request registers in the
 * pending table under its task id and its connection is suspended; one
 * dispatcher thread BLMPOPs this server's reply list, finds the request and
 * resumes it. The same thread answers requests whose deadline passed. */
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"

#define CALL_MARGIN_S 3 /* the worker's own timeout answer comes first */

static unsigned bucket_of(const char *id)
{
    uint32_t h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % PENDING_BUCKETS;
}

void pending_insert(struct srv_req *r)
{
    unsigned b = bucket_of(r->task_id);
    pthread_mutex_lock(&S.pend_mu);
    r->pnext = S.pend[b];
    S.pend[b] = r;
    S.npend++;
    pthread_mutex_unlock(&S.pend_mu);
}

/* under pend_mu */
static struct srv_req *pending_take_locked(const char *id)
{
    struct srv_req **pp = &S.pend[bucket_of(id)];
    for (; *pp; pp = &(*pp)->pnext) {
        if (strcmp((*pp)->task_id, id) == 0) {
            struct srv_req *r = *pp;
            *pp = r->pnext;
            r->pnext = NULL;
            S.npend--;
            return r;
        }
    }
    return NULL;
}

bool pending_remove(struct srv_req *r)
{
    pthread_mutex_lock(&S.pend_mu);
    struct srv_req *x = pending_take_locked(r->task_id);
    pthread_mutex_unlock(&S.pend_mu);
    return x != NULL;
}

/* under pend_mu: hand the outcome over; resume if the handler already
 * suspended, else srv_call sees r->outcome and answers directly. */
static void deliver_locked(struct srv_req *r, json_t *outcome)
{
    r->outcome = outcome;
    if (r->suspended)
        MHD_resume_connection(r->conn);
}

static void handle_reply(const char *s, size_t len)
{
    if (len == 0)
        return; /* the wake-up shutdown_gracefully() pushes */
    json_error_t e;
    json_t *o = json_loadb(s, len, 0, &e);
    const char *id = o ? json_string_value(json_object_get(o, "id")) : NULL;
    if (!id) {
        log_warnx("dispatcher: reply without a task id: %.200s", s);
        json_decref(o);
        return;
    }
    pthread_mutex_lock(&S.pend_mu);
    struct srv_req *r = pending_take_locked(id);
    if (r)
        deliver_locked(r, o);
    pthread_mutex_unlock(&S.pend_mu);
    if (!r) {
        log_debug("dispatcher: reply for %s which is no longer waited for", id);
        json_decref(o);
    }
}

static json_t *made_up_outcome(redisContext *rc, struct srv_req *r, const char *reason,
                               const char *message)
{
    if (!reason) {
        /* running → the func overran and the worker did not say so in time;
         * queued/unknown → no worker took it */
        const char *status = NULL;
        json_t *task = NULL;
        if (rc && !rc->err) {
            char key[160];
            rds_key(key, sizeof key, &S.conf, "task:%s", r->task_id);
            redisReply *rep = redisCommand(rc, "GET %s", key);
            if (rep && rep->type == REDIS_REPLY_STRING)
                task = json_loads(rep->str, 0, NULL);
            if (rep)
                freeReplyObject(rep);
            status = json_string_value(json_object_get(task, "status"));
        }
        if (status && strcmp(status, "running") == 0) {
            reason = "EFuncTimeout";
            message = "the func did not finish before its deadline";
        } else {
            reason = "EWorkerNoResponse";
            message = "no worker answered before the deadline (workers down or busy?)";
        }
        json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "id", r->task_id, "status", "timeout", "reason",
                              reason, "message", message);
        json_decref(task);
        return o;
    }
    return json_pack("{s:s,s:s,s:s,s:s}", "id", r->task_id, "status", "timeout", "reason", reason,
                     "message", message);
}

void pending_fail(const char *task_id, json_t *outcome)
{
    pthread_mutex_lock(&S.pend_mu);
    struct srv_req *r = pending_take_locked(task_id);
    if (r)
        deliver_locked(r, outcome);
    pthread_mutex_unlock(&S.pend_mu);
    if (!r)
        json_decref(outcome); /* claimed meanwhile: its claimer answers */
}

struct srv_req *pending_claim(bool all)
{
    int64_t now = mono_ms();
    struct srv_req *list = NULL;
    pthread_mutex_lock(&S.pend_mu);
    if (S.npend == 0) {
        pthread_mutex_unlock(&S.pend_mu);
        return NULL;
    }
    for (int b = 0; b < PENDING_BUCKETS; b++) {
        struct srv_req **pp = &S.pend[b];
        while (*pp) {
            struct srv_req *r = *pp;
            if (all || r->deadline_mono <= now) {
                *pp = r->pnext;
                S.npend--;
                r->pnext = list;
                list = r;
            } else {
                pp = &r->pnext;
            }
        }
    }
    pthread_mutex_unlock(&S.pend_mu);
    return list;
}

void pending_deliver_timeouts(struct srv_req *list, redisContext *rc, const char *reason,
                              const char *message)
{
    /* out of the table: nobody else delivers to these, and srv_call keeps a
     * claimed request alive (suspended) until this delivery, so asking Redis
     * unlocked here is safe */
    while (list) {
        struct srv_req *r = list;
        list = r->pnext;
        r->pnext = NULL;
        json_t *o = made_up_outcome(rc, r, reason, message);
        pthread_mutex_lock(&S.pend_mu);
        deliver_locked(r, o);
        pthread_mutex_unlock(&S.pend_mu);
    }
}

static void expire(redisContext *rc, bool all, const char *reason, const char *message)
{
    pending_deliver_timeouts(pending_claim(all), rc, reason, message);
}

void dispatcher_expire_all(const char *reason, const char *message)
{
    expire(NULL, true, reason, message);
}

void *dispatcher_main(void *arg)
{
    (void)arg;
    char key[256];
    rds_key(key, sizeof key, &S.conf, "reply:%s", S.id);
    redisContext *rc = NULL;
    int64_t last_expire = 0, last_fail_log = 0;
    while (S.stop < 2) {
        if (rc && rc->err) {
            redisFree(rc);
            rc = NULL;
        }
        if (!rc) {
            char *err = NULL;
            rc = rds_connect(&S.conf, 3000, &err);
            if (!rc) {
                if (mono_ms() - last_fail_log > 10000) {
                    log_warnx("dispatcher: redis: %s", err ? err : "?");
                    last_fail_log = mono_ms();
                }
                free(err);
                expire(NULL, false, NULL, NULL);
                usleep(200 * 1000);
                continue;
            }
        }
        /* One command per wake-up whatever waits: under load many outcomes
         * are there, and BLPOP + LPOP was two commands per wake-up. */
        redisReply *rep = redisCommand(rc, "BLMPOP 1 1 %s LEFT COUNT 128", key);
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[1]->type == REDIS_REPLY_ARRAY) {
            redisReply *vs = rep->element[1];
            for (size_t i = 0; i < vs->elements; i++)
                if (vs->element[i]->type == REDIS_REPLY_STRING)
                    handle_reply(vs->element[i]->str, vs->element[i]->len);
        } else if (rep && rep->type == REDIS_REPLY_ERROR) {
            log_warnx("dispatcher: BLMPOP %s: %s", key, rep->str);
            usleep(200 * 1000);
        }
        if (rep)
            freeReplyObject(rep);
        if (mono_ms() - last_expire >= 200) {
            expire(rc, false, NULL, NULL);
            last_expire = mono_ms();
        }
    }
    if (rc)
        redisFree(rc);
    return NULL;
}

/* ---- the calls ----------------------------------------------------------- */

void srv_task_init(struct task *t, const char *func, json_t *kwargs, bool sync, int timeout)
{
    memset(t, 0, sizeof *t);
    id_new(t->id, sizeof t->id, "task-");
    snprintf(t->func, sizeof t->func, "%s", func);
    t->kwargs = kwargs ? kwargs : json_object();
    t->origin = ORIGIN_FUNC;
    if (timeout <= 0)
        timeout = S.conf.func_timeout;
    int cap = sync ? S.conf.sync_timeout : S.conf.async_timeout;
    t->timeout = timeout > cap ? cap : timeout;
    if (sync)
        snprintf(t->reply, sizeof t->reply, "%s", S.id);
    snprintf(t->queue, sizeof t->queue, "%s", sync ? "sync" : "async");
    t->enq_ms = now_ms();
    /* nobody waits for a sync result past its deadline: don't start it then */
    t->expires_ms = sync ? t->enq_ms + (int64_t)t->timeout * 1000 : 0;
    t->epoch = S.epoch;
}

int srv_call(struct srv_req *r, struct task *t, srv_call_done done, void *ud)
{
    if (!t->reply[0]) /* async: the accept thread's, which answers the id */
        return srv_accept(r, t, json_pack("{s:s}", "id", t->id), NULL, NULL);
    redisContext *rc = srv_redis(r);
    if (!rc)
        return -1;
    char *err = NULL;
    r->done = done;
    r->done_ud = ud;
    snprintf(r->task_id, sizeof r->task_id, "%s", t->id);
    r->deadline_mono = mono_ms() + ((int64_t)t->timeout + CALL_MARGIN_S) * 1000;
    r->outcome = NULL;
    r->suspended = false;
    /* registered before the enqueue: the outcome can come back at once */
    pending_insert(r);
    if (accept_sync(r, t) == 0)
        return 0; /* suspended; the accept thread enqueues it with others */
    if (task_enqueue(rc, &S.conf, t, &err) != 0) {
        metrics_call(&S.metrics, CO_ENQUEUE_ERROR);
        req_err(r, 503, "EBackend", NULL, "cannot enqueue the task: %s", err ? err : "?");
        free(err);
        if (rc->err)
            srv_redis_broken();
        /* One owner: whoever takes r out of the pending table delivers to
         * it. If the dispatcher's expire() claimed r while the enqueue
         * stalled, it is about to write r->outcome and resume r: r must
         * live until then, so it waits suspended with the 503 above as its
         * answer (the resume path sends it and drops the outcome). */
        pthread_mutex_lock(&S.pend_mu);
        bool claimed = pending_take_locked(r->task_id) == NULL;
        json_t *late = NULL;
        if (claimed && r->outcome) {
            late = r->outcome; /* already delivered: nothing more will come */
            r->outcome = NULL;
        } else if (claimed) {
            r->suspended = true;
            r->state = RS_SUSPENDED;
            MHD_suspend_connection(r->conn);
        }
        pthread_mutex_unlock(&S.pend_mu);
        json_decref(late);
        return -1;
    }
    pthread_mutex_lock(&S.pend_mu);
    if (r->outcome) {
        pthread_mutex_unlock(&S.pend_mu);
        json_t *o = r->outcome;
        r->outcome = NULL;
        done(r, o, ud);
        json_decref(o);
        return 0;
    }
    r->suspended = true;
    r->state = RS_SUSPENDED;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&S.pend_mu);
    return 0;
}

void srv_answer_outcome(struct srv_req *r, json_t *outcome, bool raw)
{
    const char *status = json_string_value(json_object_get(outcome, "status"));
    const char *reason = json_string_value(json_object_get(outcome, "reason"));
    const char *id = json_string_value(json_object_get(outcome, "id"));
    metrics_call(&S.metrics, metrics_outcome_of(status, reason));
    if (status && strcmp(status, "success") == 0) {
        json_t *res = json_object_get(outcome, "result");
        if (raw) {
            char *s = json_dumps(res ? res : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
            if (s) {
                req_raw(r, 200, "application/json", s, strlen(s));
                return;
            }
            req_err(r, 500, "EServerInternal", NULL, "cannot encode the result");
            return;
        }
        req_ok(r, json_pack("{s:s,s:O}", "id", id ? id : r->task_id, "result",
                            res ? res : json_null()));
        return;
    }
    if (!reason) {
        if (status && strcmp(status, "timeout") == 0)
            reason = "EFuncTimeout";
        else if (status && strcmp(status, "crashed") == 0)
            reason = "EWorkerCrashed";
        else if (status && strcmp(status, "expired") == 0)
            reason = "ETaskExpired";
        else
            reason = "EFuncFailed";
    }
    int http = 599;
    if (strcmp(reason, "EFuncNotFound") == 0)
        http = 404;
    else if (strcmp(reason, "EScriptSyntaxError") == 0)
        http = 400;
    else if (strcmp(reason, "EBackend") == 0)
        http = 503; /* the worker could not reach Redis/MariaDB for it */
    const char *msg = json_string_value(json_object_get(outcome, "message"));
    json_t *detail =
        json_pack("{s:s,s:s}", "id", id ? id : r->task_id, "status", status ? status : "failure");
    const char *fields[] = {"traceback", "output", "line"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(outcome, fields[i]);
        if (v)
            json_object_set(detail, fields[i], v);
    }
    req_err(r, http, reason, detail, "%s", msg ? msg : reason);
}
