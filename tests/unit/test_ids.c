#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ids.h"

static void test_ids_func_id_split_valid(void **state)
{
    (void)state;
    char set[64], script[128], func[64];
    assert_true(func_id_split("demo__hello.greet", set, sizeof(set), script, sizeof(script), func,
                              sizeof(func)));
    assert_string_equal(set, "demo");
    assert_string_equal(script, "demo__hello");
    assert_string_equal(func, "greet");

    /* "__" after the first split belongs to the script name. */
    assert_true(
        func_id_split("a__b__c.f_1", set, sizeof(set), script, sizeof(script), func, sizeof(func)));
    assert_string_equal(set, "a");
    assert_string_equal(script, "a__b__c");
    assert_string_equal(func, "f_1");

    /* Any output may be NULL. */
    assert_true(func_id_split("Set9__Name_x.Fn", NULL, 0, NULL, 0, NULL, 0));
}

static void test_ids_func_id_split_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",                  /* empty */
        "demo.hello",        /* no "__" */
        "__hello.greet",     /* empty set */
        "demo__.greet",      /* empty script name */
        "demo__hello",       /* no func */
        "demo__hello.",      /* empty func */
        "demo__hello.a.b",   /* two dots */
        "de-mo__hello.f",    /* '-' not allowed */
        "demo__hel lo.f",    /* space */
        "demo__hello.f()",   /* punctuation */
        "demo__h\xc3\xa9.f", /* non-ASCII */
        ".f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char set[64];
        if (func_id_split(bad[i], set, sizeof(set), NULL, 0, NULL, 0))
            fail_msg("func id \"%s\" accepted", bad[i]);
    }
    assert_false(func_id_split(NULL, NULL, 0, NULL, 0, NULL, 0));
}

static void test_ids_func_id_split_rejects_small_buffers(void **state)
{
    (void)state;
    char set[4];
    assert_false(func_id_split("longset__x.f", set, sizeof(set), NULL, 0, NULL, 0));
    assert_true(func_id_split("abc__x.f", set, sizeof(set), NULL, 0, NULL, 0));
    assert_string_equal(set, "abc");
}

static void test_ids_script_id_valid(void **state)
{
    (void)state;
    assert_true(script_id_valid("demo__hello"));
    assert_true(script_id_valid("a__b"));
    assert_false(script_id_valid("demo"));
    assert_false(script_id_valid("__hello"));
    assert_false(script_id_valid("demo__"));
    assert_false(script_id_valid("demo__he.llo"));
    assert_false(script_id_valid(""));
    assert_false(script_id_valid(NULL));
}

static void test_ids_id_valid(void **state)
{
    (void)state;
    assert_true(id_valid("task-0123abcd"));
    assert_true(id_valid("a.b_c-D"));
    assert_false(id_valid(""));
    assert_false(id_valid("a/b"));
    assert_false(id_valid("a b"));
    assert_false(id_valid("a:b"));
    char longid[ID_MAX + 1];
    memset(longid, 'a', ID_MAX);
    longid[ID_MAX] = '\0';
    assert_false(id_valid(longid));
    longid[ID_MAX - 1] = '\0';
    assert_true(id_valid(longid));
}

static void test_ids_id_new_format_and_uniqueness(void **state)
{
    (void)state;
    enum { N = 2000 };
    char(*ids)[ID_MAX] = calloc(N, ID_MAX);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        id_new(ids[i], ID_MAX, "task-");
        assert_int_equal(strlen(ids[i]), 5 + 24);
        assert_memory_equal(ids[i], "task-", 5);
        for (int k = 5; k < 29; k++)
            assert_non_null(strchr("0123456789abcdef", ids[i][k]));
        assert_true(id_valid(ids[i]));
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (strcmp(ids[i], ids[j]) == 0)
                fail_msg("duplicate id %s", ids[i]);
    free(ids);
}

static void test_ids_secret_new_format(void **state)
{
    (void)state;
    char a[64], b[64];
    secret_new(a, sizeof(a));
    secret_new(b, sizeof(b));
    assert_int_equal(strlen(a), 3 + 40);
    assert_memory_equal(a, "tk_", 3);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_func_id_split_valid),
        cmocka_unit_test(test_ids_func_id_split_invalid),
        cmocka_unit_test(test_ids_func_id_split_rejects_small_buffers),
        cmocka_unit_test(test_ids_script_id_valid),
        cmocka_unit_test(test_ids_id_valid),
        cmocka_unit_test(test_ids_id_new_format_and_uniqueness),
        cmocka_unit_test(test_ids_secret_new_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
