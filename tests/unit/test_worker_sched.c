/* The worker's choice of stream (issue 10 defect 9, issue 8 queues): the
 * weighted round-robin gives every busy stream its share whatever sync
 * holds, serves only worker.queues, and banks nothing for an idle stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "worker.h"

/* One pick: the first stream in this turn's order that has work. */
static int pick(struct wrr *w, const int backlog[W_NQUEUES])
{
    int order[W_NQUEUES];
    wrr_order(w, order);
    for (int i = 0; i < w->n; i++)
        if (backlog[order[i]] > 0) {
            wrr_took(w);
            return order[i];
        }
    return -1;
}

static void all_served(bool serve[W_NQUEUES])
{
    for (int i = 0; i < W_NQUEUES; i++)
        serve[i] = true;
}

static void test_worker_sync_flood_cannot_starve_cron_or_async(void **state)
{
    (void)state;
    bool serve[W_NQUEUES];
    struct wrr w;
    int backlog[W_NQUEUES] = {0}, got[W_NQUEUES] = {0};
    all_served(serve);
    wrr_init(&w, serve);
    backlog[0] = backlog[1] = backlog[2] = 1000000; /* sync, cron, async all busy */
    for (int i = 0; i < 700; i++)
        got[pick(&w, backlog)]++;
    /* Each at least its weight's share of all thirteen (sync 4/17, cron
     * 2/17, async 1/17: the idle numbered queues' turns go to whoever is
     * next in the cycle), and sync, first in line, the most. */
    assert_true(got[0] >= 700 * 4 / 17 && got[0] > got[1] && got[1] > got[2] / 2);
    assert_true(got[1] >= 700 * 2 / 17);
    assert_true(got[2] >= 700 / 17);
    print_message("sync %d cron %d async %d of 700\n", got[0], got[1], got[2]);
    /* and the first cron task does not wait behind the whole sync flood */
    wrr_init(&w, serve);
    int first_cron = -1;
    for (int i = 0; i < 100 && first_cron < 0; i++)
        if (pick(&w, backlog) == 1)
            first_cron = i;
    assert_in_range(first_cron, 0, 17);
}

static void test_worker_idle_streams_cost_nothing_and_bank_nothing(void **state)
{
    (void)state;
    bool serve[W_NQUEUES];
    struct wrr w;
    int backlog[W_NQUEUES] = {0};
    all_served(serve);
    wrr_init(&w, serve);
    backlog[0] = 1;
    for (int i = 0; i < 1000; i++) /* only sync busy: sync every time */
        assert_int_equal(pick(&w, backlog), 0);
    /* cron wakes up after a long idle time: its share, not a burst */
    backlog[1] = 1;
    int cron = 0;
    for (int i = 0; i < 17; i++)
        cron += pick(&w, backlog) == 1;
    assert_in_range(cron, 1, 6);
    memset(backlog, 0, sizeof(backlog));
    assert_int_equal(pick(&w, backlog), -1);
}

static void test_worker_numbered_queues_get_their_turn(void **state)
{
    (void)state;
    bool serve[W_NQUEUES];
    struct wrr w;
    int backlog[W_NQUEUES], got[W_NQUEUES] = {0};
    all_served(serve);
    wrr_init(&w, serve);
    for (int i = 0; i < W_NQUEUES; i++)
        backlog[i] = 1;
    for (int i = 0; i < 17 * 10; i++)
        got[pick(&w, backlog)]++;
    for (int q = 3; q < W_NQUEUES; q++)
        assert_int_equal(got[q], 10);
    assert_int_equal(got[0], 40);
}

static void test_worker_queues_option_limits_the_served_streams(void **state)
{
    (void)state;
    struct tconf c;
    bool serve[W_NQUEUES];
    char why[128];
    struct wrr w;
    tconf_defaults(&c);
    assert_int_equal(w_queues_served(&c, serve, why, sizeof(why)), 0);
    for (int i = 0; i < W_NQUEUES; i++)
        assert_true(serve[i]); /* default: all thirteen */
    snprintf(c.worker_queues[0], sizeof(c.worker_queues[0]), "5");
    c.worker_nqueues = 1;
    assert_int_equal(w_queues_served(&c, serve, why, sizeof(why)), 0);
    for (int i = 0; i < W_NQUEUES; i++)
        assert_int_equal(serve[i], strcmp(w_queues[i], "5") == 0);
    wrr_init(&w, serve);
    int backlog[W_NQUEUES];
    for (int i = 0; i < W_NQUEUES; i++)
        backlog[i] = 1;
    for (int i = 0; i < 20; i++)
        assert_int_equal(pick(&w, backlog), w_queue_index("5"));
    snprintf(c.worker_queues[0], sizeof(c.worker_queues[0]), "12");
    assert_int_equal(w_queues_served(&c, serve, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "\"12\""));
    assert_int_equal(w_queue_index("cron"), 1);
    assert_int_equal(w_queue_index("9"), 12);
    assert_int_equal(w_queue_index("10"), -1);
}

static int load_text(struct tconf *c, const char *text, char **err)
{
    char path[] = "/tmp/test_worker_sched_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rv = tconf_load(c, path, err);
    unlink(path);
    return rv;
}

static void test_worker_queues_option_is_checked_at_load(void **state)
{
    (void)state;
    struct tconf c;
    char *err = NULL;
    assert_int_equal(load_text(&c, "worker = { queues = [\"sync\", \"5\"]; };\n", &err), 0);
    assert_int_equal(c.worker_nqueues, 2);
    assert_string_equal(c.worker_queues[1], "5");
    free(err);
    err = NULL;
    assert_int_equal(load_text(&c, "worker = {\n queues = [\"5\", \"x\", \"5\"];\n};\n", &err), -1);
    assert_non_null(err);
    assert_non_null(strstr(err, "worker.queues: item 2 \"x\" is not a queue"));
    assert_non_null(strstr(err, "item 3 \"5\" is listed twice"));
    free(err);
}

/* The child's counters: summed per status, written as HINCRBY pairs, and
 * nothing to write once cleared (a flush that failed keeps them). */
static void test_worker_stats_are_summed_until_flushed(void **state)
{
    (void)state;
    struct wstats s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(wstats_argv(&s), 0);
    wstats_add(&s, "success", 3);
    wstats_add(&s, "failure", 4);
    wstats_add(&s, "success", 5);
    int n = wstats_argv(&s);
    assert_int_equal(n, 8);
    assert_string_equal(s.argv[0], "tasks");
    assert_string_equal(s.argv[1], "3");
    assert_string_equal(s.argv[2], "cost_ms");
    assert_string_equal(s.argv[3], "12");
    assert_string_equal(s.argv[4], "success");
    assert_string_equal(s.argv[5], "2");
    assert_string_equal(s.argv[6], "failure");
    assert_string_equal(s.argv[7], "1");
    /* not flushed: still all there, and the next task adds to them */
    wstats_add(&s, "timeout", 0);
    assert_int_equal(wstats_argv(&s), 10);
    assert_string_equal(s.argv[1], "4");
    wstats_clear(&s, 1234);
    assert_int_equal(wstats_argv(&s), 0);
    assert_int_equal(s.flushed_mono, 1234);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_sync_flood_cannot_starve_cron_or_async),
        cmocka_unit_test(test_worker_idle_streams_cost_nothing_and_bank_nothing),
        cmocka_unit_test(test_worker_numbered_queues_get_their_turn),
        cmocka_unit_test(test_worker_queues_option_limits_the_served_streams),
        cmocka_unit_test(test_worker_queues_option_is_checked_at_load),
        cmocka_unit_test(test_worker_stats_are_summed_until_flushed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
