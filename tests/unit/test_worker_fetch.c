/* The child's fetch (W_FETCH_FN_LUA) and the commit script that carries it,
 * against a real redis-server: one look (XREAD) instead of an XREADGROUP
 * and an XREVRANGE per stream, one entry claimed at most, ids that move
 * past entries other consumers hold, and the commit's ARGV layout with the
 * fetch's arguments between the fixed ones and the counters. Commands are
 * counted with INFO commandstats, so a test fails if a look costs more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "redis_fixture.h"
#include "worker.h"

static const char FETCH[] =
    W_FETCH_FN_LUA "return fetch(KEYS[1], 2, #KEYS - 1, ARGV[1], ARGV[2], 3)";

static void cmd(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    freeReplyObject(r);
}

/* The calls of one command so far (INFO commandstats). */
static long long calls(redisContext *rc, const char *name)
{
    redisReply *r = redisCommand(rc, "INFO commandstats");
    assert_non_null(r);
    char pat[64];
    snprintf(pat, sizeof pat, "cmdstat_%s:calls=", name);
    const char *p = strstr(r->str, pat);
    long long n = p ? strtoll(p + strlen(pat), NULL, 10) : 0;
    freeReplyObject(r);
    return n;
}

static char *xadd(redisContext *rc, const char *key)
{
    redisReply *r = redisCommand(rc, "XADD %s * t {}", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char *id = strdup(r->str);
    freeReplyObject(r);
    return id;
}

/* Runs the fetch over streams ut:q:a, ut:q:b as consumer `who`, with the
 * look flag and the two stream states ("c0-0", "h<id>", ...). */
static redisReply *fetch(redisContext *rc, const char *who, const char *look, const char *sa,
                         const char *sb)
{
    const char *argv[] = {"EVAL", FETCH, "3", "ut:gen", "ut:q:a", "ut:q:b", who, "1", look, sa, sb};
    redisReply *r = redisCommandArgv(rc, 11, argv, NULL);
    assert_non_null(r);
    return r;
}

static void fresh_streams(redisContext *rc)
{
    cmd(rc, "DEL ut:q:a ut:q:b ut:gen");
    cmd(rc, "XGROUP CREATE ut:q:a workers 0 MKSTREAM");
    cmd(rc, "XGROUP CREATE ut:q:b workers 0 MKSTREAM");
    cmd(rc, "SET ut:gen 7");
}

static void test_idle_look_is_one_xread(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    fresh_streams(f->rc);
    long long xr = calls(f->rc, "xread"), xg = calls(f->rc, "xreadgroup"),
              xv = calls(f->rc, "xrevrange");
    redisReply *r = fetch(f->rc, "c1", "1", "c0-0", "c0-0");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 8);
    assert_string_equal(r->element[0]->str, "7");  /* gen read in the same script */
    assert_int_equal(r->element[1]->integer, 0);   /* nothing claimed */
    assert_int_equal(r->element[4]->integer, 1);   /* looked */
    assert_string_equal(r->element[5]->str, "ee"); /* both found empty */
    assert_int_equal(r->element[6]->elements, 2);  /* no id moved */
    assert_int_equal(r->element[6]->element[0]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    assert_int_equal(calls(f->rc, "xread") - xr, 1);
    assert_int_equal(calls(f->rc, "xreadgroup") - xg, 0);
    assert_int_equal(calls(f->rc, "xrevrange") - xv, 0);

    /* without the look flag and nothing hot, the look is made anyway */
    r = fetch(f->rc, "c1", "0", "c0-0", "c0-0");
    assert_int_equal(r->element[4]->integer, 1);
    assert_string_equal(r->element[5]->str, "ee");
    freeReplyObject(r);
}

static void test_one_entry_claimed_in_order(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    fresh_streams(f->rc);
    char *ia = xadd(f->rc, "ut:q:a"), *ib = xadd(f->rc, "ut:q:b");
    long long xg = calls(f->rc, "xreadgroup");
    redisReply *r = fetch(f->rc, "c1", "1", "c0-0", "c0-0");
    assert_int_equal(r->element[1]->integer, 1); /* a first: the order given */
    assert_string_equal(r->element[2]->str, ia);
    assert_int_equal(r->element[3]->type, REDIS_REPLY_ARRAY); /* the fields */
    assert_int_equal(r->element[7]->integer, 0);              /* the look saw it alone: not hot */
    freeReplyObject(r);
    assert_int_equal(calls(f->rc, "xreadgroup") - xg, 1);
    /* b's entry was not claimed with it: nothing pending there */
    r = redisCommand(f->rc, "XPENDING ut:q:b workers");
    assert_int_equal(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* b first now: b's entry */
    const char *argv[] = {"EVAL", FETCH, "3", "ut:gen", "ut:q:b", "ut:q:a",
                          "c1",   "0",   "1", "c0-0",   "h0-0"};
    r = redisCommandArgv(f->rc, 11, argv, NULL);
    assert_int_equal(r->element[1]->integer, 1);
    assert_string_equal(r->element[2]->str, ib);
    freeReplyObject(r);
    free(ia);
    free(ib);
}

static void test_ids_move_past_entries_others_hold(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    fresh_streams(f->rc);
    /* another consumer holds one entry of b: the look sees it, the
     * XREADGROUP finds nothing, and b's id moves to it (no XREVRANGE: the
     * XREAD saw the newest) */
    char *i1 = xadd(f->rc, "ut:q:b");
    cmd(f->rc, "XREADGROUP GROUP workers other COUNT 1 STREAMS ut:q:b >");
    long long xv = calls(f->rc, "xrevrange");
    redisReply *r = fetch(f->rc, "c1", "1", "c0-0", "c0-0");
    assert_int_equal(r->element[1]->integer, 0);
    assert_string_equal(r->element[5]->str, "ee");
    assert_int_equal(r->element[6]->element[0]->type, REDIS_REPLY_NIL);
    assert_string_equal(r->element[6]->element[1]->str, i1);
    freeReplyObject(r);
    assert_int_equal(calls(f->rc, "xrevrange") - xv, 0);

    /* two more held: the id moves to the newest (XREVRANGE once) */
    free(xadd(f->rc, "ut:q:b"));
    char *i3 = xadd(f->rc, "ut:q:b");
    cmd(f->rc, "XREADGROUP GROUP workers other COUNT 2 STREAMS ut:q:b >");
    char st[64];
    snprintf(st, sizeof st, "c%s", i1);
    r = fetch(f->rc, "c1", "1", "c0-0", st);
    assert_int_equal(r->element[1]->integer, 0);
    assert_string_equal(r->element[6]->element[1]->str, i3);
    freeReplyObject(r);
    assert_int_equal(calls(f->rc, "xrevrange") - xv, 1);

    /* after the newest id, a new entry is claimed and nothing else looked at */
    char *i4 = xadd(f->rc, "ut:q:b");
    snprintf(st, sizeof st, "h%s", i3);
    long long xr = calls(f->rc, "xread");
    r = fetch(f->rc, "c1", "0", "c0-0", st); /* b hot, no look due */
    assert_int_equal(r->element[1]->integer, 2);
    assert_string_equal(r->element[2]->str, i4);
    assert_int_equal(r->element[4]->integer, 0); /* no look: straight to b */
    assert_int_equal(calls(f->rc, "xread") - xr, 0);
    assert_int_equal(r->element[7]->integer, 1); /* more may follow: stays hot */
    freeReplyObject(r);

    /* mode w (after an XREAD BLOCK woke for b at i5): b only, no look; the
     * entry is another's by then, so b's id becomes i5 */
    char *i5 = xadd(f->rc, "ut:q:b");
    cmd(f->rc, "XREADGROUP GROUP workers other COUNT 1 STREAMS ut:q:b >");
    snprintf(st, sizeof st, "h%s", i5);
    xr = calls(f->rc, "xread");
    r = fetch(f->rc, "c1", "w", "c0-0", st);
    assert_int_equal(r->element[1]->integer, 0);
    assert_int_equal(r->element[4]->integer, 0);
    assert_string_equal(r->element[5]->str, "ne"); /* a not looked at */
    assert_string_equal(r->element[6]->element[1]->str, i5);
    freeReplyObject(r);
    assert_int_equal(calls(f->rc, "xread") - xr, 0);
    free(i1);
    free(i3);
    free(i4);
    free(i5);
}

static void test_errors_are_returned_not_raised(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    fresh_streams(f->rc);
    cmd(f->rc, "DEL ut:q:a");
    cmd(f->rc, "SET ut:q:a notastream");
    redisReply *r = fetch(f->rc, "c1", "1", "c0-0", "c0-0");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "WRONGTYPE"));
    freeReplyObject(r);
    /* a stream without the group: NOGROUP, for the child to recreate it */
    cmd(f->rc, "DEL ut:q:a");
    free(xadd(f->rc, "ut:q:a"));
    r = fetch(f->rc, "c1", "1", "c0-0", "c0-0");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "NOGROUP"));
    freeReplyObject(r);
}

struct got {
    long long pos;
    char id[48];
};

static void got_reply(redisReply *r, void *ud)
{
    struct got *g = ud;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 8) {
        g->pos = r->element[1]->integer;
        if (r->element[2]->type == REDIS_REPLY_STRING)
            snprintf(g->id, sizeof g->id, "%s", r->element[2]->str);
    }
}

/* The commit script with its fetch: the outcome written and acked, the next
 * entry claimed in the same script, the counters after the fetch's
 * arguments (ARGV 14 says how many there are). */
static void test_commit_carries_the_fetch(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc == NULL)
        skip();
    fresh_streams(f->rc);
    cmd(f->rc, "DEL ut:q:sync ut:stats:worker ut:taskrec");
    cmd(f->rc, "XGROUP CREATE ut:q:sync workers 0 MKSTREAM");
    char *e1 = xadd(f->rc, "ut:q:sync");
    cmd(f->rc, "XREADGROUP GROUP workers c1 COUNT 1 STREAMS ut:q:sync >");
    char *e2 = xadd(f->rc, "ut:q:b");

    struct wtask t;
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id, "task-fetch1");
    snprintf(t.func, sizeof t.func, "s__x.f");
    snprintf(t.queue, sizeof t.queue, "sync");
    snprintf(t.entry, sizeof t.entry, "%s", e1);
    t.timeout = 5;
    struct woutcome o = {.status = "success", .start_ms = 1000, .end_ms = 1002};
    const char *keys[] = {"ut:gen", "ut:q:a", "ut:q:b"};
    const char *args[] = {"1", "c0-0", "c0-0"};
    const char *stats[] = {"tasks", "1", "success", "1"};
    struct got g = {-1, ""};
    struct wrec_extra extra = {keys, 3,     "c1", "0",  args, 3,   got_reply,
                               &g,   stats, 4,    NULL, NULL, NULL};
    char *err = NULL;
    assert_int_equal(wrec_commit(f->rc, &f->conf, &t, &o, "n1", 1, NULL, &extra, &err), 0);
    assert_null(err);
    /* acked and deleted; the record and the counters written */
    redisReply *r = redisCommand(f->rc, "XLEN ut:q:sync");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(f->rc, "HGET ut:stats:worker success");
    assert_string_equal(r->str, "1");
    freeReplyObject(r);
    r = redisCommand(f->rc, "LLEN ut:taskrec");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* b's entry claimed by the commit's fetch, and answered */
    assert_int_equal(g.pos, 2);
    assert_string_equal(g.id, e2);
    r = redisCommand(f->rc, "XPENDING ut:q:b workers - + 10 c1");
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, e2);
    freeReplyObject(r);
    free(e1);
    free(e2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_look_is_one_xread),
        cmocka_unit_test(test_one_entry_claimed_in_order),
        cmocka_unit_test(test_ids_move_past_entries_others_hold),
        cmocka_unit_test(test_errors_are_returned_not_raised),
        cmocka_unit_test(test_commit_carries_the_fetch),
    };
    return cmocka_run_group_tests(tests, redis_up, redis_down);
}
