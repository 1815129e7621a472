/* The idle children's turn to wait in Redis (worker_listen.c): who holds
 * it, the ids handed over, a dead holder, and a real wait across fork()
 * on a shared page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "worker.h"

static struct wlisten *page(void)
{
    struct wlisten *l = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(l != MAP_FAILED);
    return l;
}

static void ids_set(char ids[W_NQUEUES][48], const char *v)
{
    for (int q = 0; q < W_NQUEUES; q++)
        snprintf(ids[q], sizeof(ids[q]), "%s", v);
}

static void test_stream_ids_compare_as_redis_does(void **state)
{
    (void)state;
    assert_true(stream_id_cmp("1-0", "0-0") > 0);
    assert_true(stream_id_cmp("1700000000000-9", "1700000000000-10") < 0);
    assert_true(stream_id_cmp("999-5", "1000-0") < 0); /* numbers, not strings */
    assert_int_equal(stream_id_cmp("12-3", "12-3"), 0);
    assert_true(stream_id_cmp("12", "11-7") > 0);
}

static void test_one_holder_at_a_time(void **state)
{
    (void)state;
    struct wlisten *l = page();
    uint32_t t1, t2;
    assert_true(wlisten_try(l, 100, &t1));
    assert_true(wlisten_try(l, 100, &t1)); /* already its */
    assert_false(wlisten_try(l, 200, &t2));
    wlisten_release(l, 200, NULL); /* not its: nothing */
    assert_int_equal(atomic_load(&l->owner), 100);
    wlisten_release(l, 100, NULL);
    assert_int_equal(atomic_load(&l->owner), 0);
    assert_true(atomic_load(&l->turn) != t2); /* a waiter on t2 would not sleep */
    assert_true(wlisten_try(l, 200, &t2));
    munmap(l, 4096);
}

static void test_handed_ids_move_forward_only(void **state)
{
    (void)state;
    struct wlisten *l = page();
    bool serve[W_NQUEUES] = {true, true, true};
    char left[W_NQUEUES][48], own[W_NQUEUES][48];
    uint32_t t;
    assert_true(wlisten_try(l, 100, &t));
    ids_set(left, "0-0");
    snprintf(left[0], sizeof(left[0]), "1700000000500-0"); /* sync: later than ours */
    snprintf(left[1], sizeof(left[1]), "1700000000100-0"); /* cron: earlier than ours */
    snprintf(left[2], sizeof(left[2]), "garbage");         /* async: not an id */
    snprintf(left[3], sizeof(left[3]), "1700000000900-0"); /* queue 0: not served */
    wlisten_release(l, 100, left);

    assert_true(wlisten_try(l, 200, &t));
    ids_set(own, "1700000000200-0");
    wlisten_take_ids(l, own, serve);
    assert_string_equal(own[0], "1700000000500-0");
    assert_string_equal(own[1], "1700000000200-0");
    assert_string_equal(own[2], "1700000000200-0");
    assert_string_equal(own[3], "1700000000200-0");
    /* taken once: a holder after a dead one gets nothing stale */
    ids_set(own, "0-0");
    wlisten_take_ids(l, own, serve);
    assert_string_equal(own[0], "0-0");
    munmap(l, 4096);
}

static void test_a_dead_holder_frees_the_turn(void **state)
{
    (void)state;
    struct wlisten *l = page();
    uint32_t t;
    assert_true(wlisten_try(l, 100, &t));
    wlisten_dead(l, 300); /* someone else died: the turn stays */
    assert_int_equal(atomic_load(&l->owner), 100);
    wlisten_dead(l, 100);
    assert_int_equal(atomic_load(&l->owner), 0);
    assert_int_equal(atomic_load(&l->valid), 0);

    /* a waiter whose wait times out frees the turn of a holder that is gone */
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    assert_true(gone > 0);
    waitpid(gone, NULL, 0);
    assert_true(wlisten_try(l, (int)gone, &t));
    assert_false(wlisten_try(l, 200, &t));
    int64_t t0 = mono_ms();
    wlisten_wait(l, t, 50);
    assert_true(mono_ms() - t0 >= 40);
    assert_int_equal(atomic_load(&l->owner), 0);
    munmap(l, 4096);
}

/* A process waiting for the turn sleeps until the holder, another
 * process, gives it away, then takes it. */
static void test_a_waiter_in_another_process_wakes_at_the_release(void **state)
{
    (void)state;
    struct wlisten *l = page();
    uint32_t t;
    assert_true(wlisten_try(l, 100, &t));
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t kid = fork();
    if (kid == 0) {
        int me = (int)getpid();
        int64_t t0 = mono_ms();
        uint32_t turn;
        while (!wlisten_try(l, me, &turn) && mono_ms() - t0 < 5000)
            wlisten_wait(l, turn, 1000);
        int64_t waited = mono_ms() - t0;
        bool got = atomic_load(&l->owner) == me;
        char ok = got ? 'y' : 'n';
        if (write(pfd[1], &ok, 1) != 1 || write(pfd[1], &waited, sizeof(waited)) != sizeof(waited))
            _exit(2);
        _exit(0);
    }
    assert_true(kid > 0);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&l->waiters), 1); /* asleep, not spinning */
    wlisten_release(l, 100, NULL);
    char ok = 0;
    int64_t waited = 0;
    assert_int_equal(read(pfd[0], &ok, 1), 1);
    assert_int_equal(read(pfd[0], &waited, sizeof(waited)), (ssize_t)sizeof(waited));
    int status;
    waitpid(kid, &status, 0);
    assert_int_equal(ok, 'y');
    assert_true(waited >= 150 && waited < 1000); /* woken by the release, not the timeout */
    close(pfd[0]);
    close(pfd[1]);
    munmap(l, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_ids_compare_as_redis_does),
        cmocka_unit_test(test_one_holder_at_a_time),
        cmocka_unit_test(test_handed_ids_move_forward_only),
        cmocka_unit_test(test_a_dead_holder_frees_the_turn),
        cmocka_unit_test(test_a_waiter_in_another_process_wakes_at_the_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
