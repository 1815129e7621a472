/* Secrets at rest: a sealed value opens only with the key it was sealed
 * under, never shows the plain text, and damage is detected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "secret.h"

static const char *K1 = "0123456789abcdef-shared-by-both-nodes";
static const char *K2 = "another-key-of-enough-length";

static void test_secret_round_trip_hides_plain_text(void **st)
{
    (void)st;
    char *s = NULL, *p = NULL, *err = NULL;
    assert_int_equal(secret_seal(K1, "hunter2 pässwörd", &s, &err), 0);
    assert_true(secret_is_sealed(s));
    assert_null(strstr(s, "hunter2"));
    assert_int_equal(secret_open(K1, s, &p, &err), 0);
    assert_string_equal(p, "hunter2 pässwörd");
    free(p);
    free(s);
}

static void test_secret_two_seals_differ(void **st)
{
    (void)st;
    char *a = NULL, *b = NULL, *err = NULL;
    assert_int_equal(secret_seal(K1, "same", &a, &err), 0);
    assert_int_equal(secret_seal(K1, "same", &b, &err), 0);
    assert_string_not_equal(a, b); /* a fresh nonce each time */
    free(a);
    free(b);
}

static void test_secret_wrong_key_refused(void **st)
{
    (void)st;
    char *s = NULL, *p = NULL, *err = NULL;
    assert_int_equal(secret_seal(K1, "x", &s, &err), 0);
    assert_int_equal(secret_open(K2, s, &p, &err), -1);
    assert_null(p);
    assert_non_null(strstr(err, "another key"));
    free(err);
    free(s);
}

static void test_secret_tampered_refused(void **st)
{
    (void)st;
    char *s = NULL, *p = NULL, *err = NULL;
    assert_int_equal(secret_seal(K1, "tamper me", &s, &err), 0);
    size_t n = strlen(s);
    s[n - 3] = s[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(secret_open(K1, s, &p, &err), -1);
    free(err);
    err = NULL;
    assert_int_equal(secret_open(K1, "sealed:v1:!!!", &p, &err), -1);
    assert_non_null(strstr(err, "damaged"));
    free(err);
    err = NULL;
    assert_int_equal(secret_open(K1, "plain", &p, &err), -1);
    assert_non_null(strstr(err, "not sealed"));
    free(err);
    free(s);
}

static void test_secret_missing_or_short_key_refused(void **st)
{
    (void)st;
    char *s = NULL, *err = NULL;
    assert_int_equal(secret_seal("", "x", &s, &err), -1);
    assert_non_null(strstr(err, "secret.key is not set"));
    free(err);
    err = NULL;
    assert_int_equal(secret_seal("short", "x", &s, &err), -1);
    assert_non_null(strstr(err, "at least"));
    free(err);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_round_trip_hides_plain_text),
        cmocka_unit_test(test_secret_two_seals_differ),
        cmocka_unit_test(test_secret_wrong_key_refused),
        cmocka_unit_test(test_secret_tampered_refused),
        cmocka_unit_test(test_secret_missing_or_short_key_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
