/* Ownership of a pending sync call between srv_call() and the dispatcher's
 * expiry (issue 10, defect 6): Redis stalls (CLIENT PAUSE) while a request
 * is enqueued, its deadline has passed, the dispatcher claims it, and then
 * the enqueue fails (the queue key has the wrong type). Whatever the order,
 * the request must be delivered to at most once by one owner and must stay
 * alive (suspended) until that delivery. Needs /usr/bin/redis-server. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <microhttpd.h>

#include "redis_fixture.h"
#include "server_int.h"

/* The test binary's own definitions win over libmicrohttpd's: count what
 * srv_call and the dispatcher do to the (absent) connection. */
static atomic_int suspends, resumes;
void MHD_suspend_connection(struct MHD_Connection *c)
{
    (void)c;
    atomic_fetch_add(&suspends, 1);
}
void MHD_resume_connection(struct MHD_Connection *c)
{
    (void)c;
    atomic_fetch_add(&resumes, 1);
}

static int done_calls;
static void done_cb(struct srv_req *r, json_t *o, void *ud)
{
    (void)r;
    (void)o;
    (void)ud;
    done_calls++;
}

struct caller {
    struct srv_req *r;
    int rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage; /* 1 = connected, 2 = go */
};

static void *caller_main(void *arg)
{
    struct caller *c = arg;
    /* this thread's Redis connection exists before Redis is paused */
    assert_non_null(srv_redis(c->r));
    pthread_mutex_lock(&c->mu);
    c->stage = 1;
    pthread_cond_broadcast(&c->cv);
    while (c->stage != 2)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    struct task t;
    srv_task_init(&t, "demo__x.f", NULL, true, 1);
    t.timeout = -10; /* deadline (timeout + margin) already passed */
    c->rc = srv_call(c->r, &t, done_cb, NULL);
    task_free(&t);
    return NULL;
}

static void redis_do(struct redis_fixture *f, const char *cmd)
{
    redisReply *rep = redisCommand(f->rc, cmd);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
}

/* Runs srv_call in a thread while Redis is paused; `during` runs once the
 * request is in the pending table and its enqueue is stalled. */
static void stalled_failing_call(struct redis_fixture *f, struct caller *c,
                                 void (*during)(struct caller *c))
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->r = calloc(1, sizeof *c->r);
    c->r->method = "POST";
    c->r->path = "/api/v1/func/demo__x.f";
    suspends = resumes = 0;
    done_calls = 0;
    redis_do(f, "SET ut:q:sync not-a-stream"); /* the enqueue will fail */
    pthread_t th;
    pthread_create(&th, NULL, caller_main, c);
    pthread_mutex_lock(&c->mu);
    while (c->stage != 1)
        pthread_cond_wait(&c->cv, &c->mu);
    redis_do(f, "CLIENT PAUSE 700 ALL");
    c->stage = 2;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    int npend = 0;
    for (int i = 0; i < 400 && npend == 0; i++) {
        pthread_mutex_lock(&S.pend_mu);
        npend = S.npend;
        pthread_mutex_unlock(&S.pend_mu);
        if (!npend)
            usleep(1000);
    }
    assert_int_equal(npend, 1);
    during(c);
    pthread_join(th, NULL);
    assert_int_equal(c->rc, -1);
    assert_true(c->r->answered);
    assert_int_equal(c->r->status, 503);
}

static void req_free(struct srv_req *r)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    json_decref(r->outcome);
    free(r);
}

static struct srv_req *claimed;
static void claim_only(struct caller *c)
{
    claimed = pending_claim(false);
    assert_ptr_equal(claimed, c->r);
}

/* Dispatcher claims, then the enqueue fails: the request waits suspended
 * for the dispatcher's delivery (before the fix srv_call answered and
 * returned, the HTTP layer freed the request, and the delivery wrote into
 * freed memory). */
static void test_server_dispatch_claimed_request_outlives_failed_enqueue(void **state)
{
    struct redis_fixture *f = *state;
    assert_non_null(f->rc); /* redis-server is missing: that is a failure */
    struct caller c;
    stalled_failing_call(f, &c, claim_only);
    assert_int_equal(c.r->state, RS_SUSPENDED);
    assert_int_equal(suspends, 1);
    pending_deliver_timeouts(claimed, NULL, "EWorkerNoResponse", "test");
    assert_int_equal(resumes, 1);
    assert_non_null(c.r->outcome);
    assert_int_equal(done_calls, 0); /* the 503 is the answer, not the timeout */
    req_free(c.r);
}

static void claim_and_deliver(struct caller *c)
{
    struct srv_req *l = pending_claim(false);
    assert_ptr_equal(l, c->r);
    pending_deliver_timeouts(l, NULL, "EWorkerNoResponse", "test");
}

/* Dispatcher claims and delivers, then the enqueue fails: srv_call answers
 * the 503 at once and drops the delivered outcome (before the fix it stayed
 * on the request, leaked, and nothing resumed). */
static void test_server_dispatch_delivered_outcome_is_dropped_on_failed_enqueue(void **state)
{
    struct redis_fixture *f = *state;
    assert_non_null(f->rc);
    struct caller c;
    stalled_failing_call(f, &c, claim_and_deliver);
    assert_int_not_equal(c.r->state, RS_SUSPENDED);
    assert_int_equal(suspends, 0);
    assert_int_equal(resumes, 0);
    assert_null(c.r->outcome);
    assert_int_equal(done_calls, 0);
    req_free(c.r);
}

static void nothing(struct caller *c)
{
    (void)c;
}

/* Nobody claimed it: srv_call takes it out of the table itself. */
static void test_server_dispatch_unclaimed_failed_enqueue_leaves_table(void **state)
{
    struct redis_fixture *f = *state;
    assert_non_null(f->rc);
    struct caller c;
    stalled_failing_call(f, &c, nothing);
    assert_int_not_equal(c.r->state, RS_SUSPENDED);
    assert_int_equal(S.npend, 0);
    assert_null(pending_claim(true));
    req_free(c.r);
}

static int setup(void **state)
{
    if (redis_up(state) != 0)
        return -1;
    struct redis_fixture *f = *state;
    S.conf = f->conf;
    snprintf(S.id, sizeof S.id, "ut:1:x");
    pthread_mutex_init(&S.pend_mu, NULL);
    backend_init();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_dispatch_claimed_request_outlives_failed_enqueue),
        cmocka_unit_test(test_server_dispatch_delivered_outcome_is_dropped_on_failed_enqueue),
        cmocka_unit_test(test_server_dispatch_unclaimed_failed_enqueue_leaves_table),
    };
    return cmocka_run_group_tests(tests, setup, redis_down);
}
