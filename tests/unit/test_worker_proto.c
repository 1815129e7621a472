/* tandem-worker pure logic: the child -> master pipe messages, RSS parsing,
 * respawn backoff, wait-status text, the result-cache kwargs digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker.h"

static struct wtask sample(void)
{
    struct wtask t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "task-0123456789abcdef01234567");
    snprintf(t.func, sizeof(t.func), "demo__hello.greet");
    snprintf(t.queue, sizeof(t.queue), "sync");
    snprintf(t.reply, sizeof(t.reply), "node-a:12:abc");
    snprintf(t.entry, sizeof(t.entry), "1764280000123-0");
    t.timeout = 30;
    t.origin = ORIGIN_SYNC_API;
    return t;
}

static void test_worker_slot_fits_one_page(void **state)
{
    (void)state;
    assert_true(sizeof(struct wslot) <= 4096);
}

static void test_worker_message_roundtrips(void **state)
{
    (void)state;
    struct wtask t = sample();
    struct wmsg m, got;
    char why[128];
    wmsg_init(&m, WMSG_START, &t);
    memcpy(&got, &m, sizeof(m)); /* what read() hands the master */
    assert_int_equal(wmsg_check(&got, why, sizeof(why)), 0);
    assert_int_equal(got.type, WMSG_START);
    assert_string_equal(got.t.id, t.id);
    assert_string_equal(got.t.entry, "1764280000123-0");
    assert_int_equal(got.t.timeout, 30);
    wmsg_init(&m, WMSG_READY, NULL);
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), 0);
}

static void test_worker_message_rejects_garbage(void **state)
{
    (void)state;
    struct wtask t = sample();
    struct wmsg m;
    char why[128];

    wmsg_init(&m, WMSG_START, &t);
    m.magic = 0;
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "magic"));

    wmsg_init(&m, 9, &t);
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "type"));

    wmsg_init(&m, WMSG_START, &t);
    memset(m.t.func, 'x', sizeof(m.t.func)); /* no NUL */
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), -1);

    wmsg_init(&m, WMSG_START, &t);
    m.t.timeout = 0;
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "1..3600"));

    wmsg_init(&m, WMSG_START, &t);
    m.t.entry[0] = '\0';
    assert_int_equal(wmsg_check(&m, why, sizeof(why)), -1);
}

static void test_worker_wtask_from_task_copies_what_the_master_needs(void **state)
{
    (void)state;
    struct task t;
    struct wtask w;
    char *err = NULL;
    assert_int_equal(task_decode(&t,
                                 "{\"id\":\"task-1\",\"func\":\"a__b.c\",\"kwargs\":{\"x\":1},"
                                 "\"origin\":\"cron\",\"origin_id\":\"cron-9\",\"timeout\":7,"
                                 "\"queue\":\"cron\",\"enq\":5,\"nominal\":60}",
                                 &err),
                     0);
    wtask_from_task(&w, &t, "cron", "1-0");
    assert_string_equal(w.id, "task-1");
    assert_string_equal(w.origin_id, "cron-9");
    assert_int_equal(w.origin, ORIGIN_CRON);
    assert_int_equal(w.timeout, 7);
    assert_int_equal(w.nominal, 60);
    assert_string_equal(w.entry, "1-0");
    task_free(&t);
}

static void test_worker_statm_rss(void **state)
{
    (void)state;
    assert_int_equal(statm_rss_bytes("12345 678 90 1 0 500 0\n", 4096), 678LL * 4096);
    assert_int_equal(statm_rss_bytes("1 2", 4096), 8192);
    assert_int_equal(statm_rss_bytes("", 4096), -1);
    assert_int_equal(statm_rss_bytes("abc def", 4096), -1);
    assert_int_equal(statm_rss_bytes("12345", 4096), -1);
    assert_int_equal(statm_rss_bytes("1 -2 3", 4096), -1);
    assert_int_equal(statm_rss_bytes(NULL, 4096), -1);
    assert_true(proc_rss_bytes(getpid()) > 0);
    assert_int_equal(proc_rss_bytes(0x7ffffff0), -1);
}

static void test_worker_backoff_doubles_to_cap(void **state)
{
    (void)state;
    assert_int_equal(backoff_ms(0, 200, 30000), 0);
    assert_int_equal(backoff_ms(1, 200, 30000), 200);
    assert_int_equal(backoff_ms(2, 200, 30000), 400);
    assert_int_equal(backoff_ms(5, 200, 30000), 3200);
    assert_int_equal(backoff_ms(9, 200, 30000), 30000);
    assert_int_equal(backoff_ms(1000, 200, 30000), 30000);
}

static void test_worker_wait_status_text_names_exit_and_signal(void **state)
{
    (void)state;
    char buf[128];
    wait_status_text(7 << 8, buf, sizeof(buf)); /* WIFEXITED, status 7 */
    assert_string_equal(buf, "exited with status 7");
    wait_status_text(SIGSEGV, buf, sizeof(buf));
    assert_string_equal(buf, "killed by signal SIGSEGV");
    wait_status_text(SIGKILL, buf, sizeof(buf));
    assert_string_equal(buf, "killed by signal SIGKILL");
}

static void test_worker_kwargs_digest_ignores_key_order(void **state)
{
    (void)state;
    char a[65], b[65], c[65];
    json_t *x = json_loads("{\"a\":1,\"b\":[1,2]}", 0, NULL);
    json_t *y = json_loads("{\"b\":[1,2],\"a\":1}", 0, NULL);
    json_t *z = json_loads("{\"a\":2,\"b\":[1,2]}", 0, NULL);
    task_kwargs_digest(x, a);
    task_kwargs_digest(y, b);
    task_kwargs_digest(z, c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 64);
    json_decref(x);
    json_decref(y);
    json_decref(z);
}

/* The master sees the child's latest message, once: a task that began and
 * ended between two of its ticks is not replayed. */
static void test_worker_slot_gives_the_latest_message_once(void **state)
{
    (void)state;
    static struct wslot slot;
    struct wtask t1 = sample(), t2 = sample();
    struct wmsg m;
    uint64_t seen = 0;
    snprintf(t2.id, sizeof(t2.id), "task-second");
    memset(&slot, 0, sizeof(slot));
    assert_int_equal(wslot_read(&slot, &seen, &m), 0); /* nothing published yet */
    wslot_publish(&slot, WMSG_READY, NULL);
    wslot_publish(&slot, WMSG_START, &t1);
    wslot_publish(&slot, WMSG_DONE, &t1);
    wslot_publish(&slot, WMSG_START, &t2);
    assert_int_equal(wslot_read(&slot, &seen, &m), 1);
    assert_int_equal(m.type, WMSG_START);
    assert_string_equal(m.t.id, "task-second");
    assert_int_equal(wslot_read(&slot, &seen, &m), 0);
    wslot_publish(&slot, WMSG_DONE, &t2);
    assert_int_equal(wslot_read(&slot, &seen, &m), 1);
    assert_int_equal(m.type, WMSG_DONE);
    assert_int_equal(wmsg_check(&m, NULL, 0), 0);
}

/* A child killed while it writes its next message leaves the last one
 * whole: the half-written buffer is not the published one. */
static void test_worker_slot_half_written_message_is_not_read(void **state)
{
    (void)state;
    static struct wslot slot;
    struct wtask t = sample();
    struct wmsg m;
    uint64_t seen = 0;
    memset(&slot, 0, sizeof(slot));
    wslot_publish(&slot, WMSG_START, &t);
    uint64_t n = atomic_load(&slot.pub);
    memset(&slot.m[(n + 1) & 1], 0x5a, sizeof(slot.m[0])); /* the next one, cut short */
    assert_int_equal(wslot_read(&slot, &seen, &m), 1);
    assert_int_equal(m.type, WMSG_START);
    assert_string_equal(m.t.id, t.id);
}

/* A writer publishing as fast as it can: every message the reader gets is
 * one the writer published whole (its id, entry and timeout agree). */
struct race {
    struct wslot slot;
    _Atomic int done;
};

static void *race_writer(void *arg)
{
    struct race *r = arg;
    struct wtask t = sample();
    for (int i = 1; i <= 1000000; i++) {
        snprintf(t.id, sizeof(t.id), "task-%d", i);
        snprintf(t.entry, sizeof(t.entry), "%d-0", i);
        t.timeout = i % 3600 + 1;
        t.start_mono = i;
        wslot_publish(&r->slot, WMSG_START, &t);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void test_worker_slot_read_is_never_torn(void **state)
{
    (void)state;
    static struct race r;
    pthread_t th;
    uint64_t seen = 0;
    long got = 0, bad = 0;
    memset(&r, 0, sizeof(r));
    assert_int_equal(pthread_create(&th, NULL, race_writer, &r), 0);
    while (!atomic_load(&r.done)) {
        struct wmsg m;
        if (wslot_read(&r.slot, &seen, &m) != 1)
            continue;
        got++;
        int id = 0, entry = 0;
        if (sscanf(m.t.id, "task-%d", &id) != 1 || sscanf(m.t.entry, "%d-0", &entry) != 1 ||
            id != entry || m.t.timeout != id % 3600 + 1 || m.t.start_mono != id ||
            wmsg_check(&m, NULL, 0) != 0)
            bad++;
    }
    pthread_join(th, NULL);
    assert_true(got > 0);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_slot_fits_one_page),
        cmocka_unit_test(test_worker_message_roundtrips),
        cmocka_unit_test(test_worker_message_rejects_garbage),
        cmocka_unit_test(test_worker_slot_gives_the_latest_message_once),
        cmocka_unit_test(test_worker_slot_half_written_message_is_not_read),
        cmocka_unit_test(test_worker_slot_read_is_never_torn),
        cmocka_unit_test(test_worker_wtask_from_task_copies_what_the_master_needs),
        cmocka_unit_test(test_worker_statm_rss),
        cmocka_unit_test(test_worker_backoff_doubles_to_cap),
        cmocka_unit_test(test_worker_wait_status_text_names_exit_and_signal),
        cmocka_unit_test(test_worker_kwargs_digest_ignores_key_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
