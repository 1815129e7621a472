/* The pure parts of Sync/Async API calls: DFF's fixed-kwargs rule, the
 * content-type names of DFF.RESP, base64/MD5, the HTTP Digest response
 * python-requests computes, throttling windows, and eta bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "server_int.h"

static void test_server_api_placeholders_take_the_callers_value_or_vanish(void **state)
{
    (void)state;
    json_t *base =
        json_pack("{s:s,s:s,s:i}", "x", "INPUT_BY_CALLER", "y", "FROM_PARAMETER", "z", 5);
    json_t *in = json_pack("{s:i,s:s}", "x", 10, "extra", "e");
    const char *bad = NULL;
    assert_int_equal(api_kwargs_merge(base, in, &bad), 0);
    assert_int_equal(json_integer_value(json_object_get(base, "x")), 10);
    /* a placeholder the caller left out is dropped: the func's default applies */
    assert_null(json_object_get(base, "y"));
    assert_int_equal(json_integer_value(json_object_get(base, "z")), 5);
    assert_string_equal(json_string_value(json_object_get(base, "extra")), "e");
    json_decref(base);
    json_decref(in);
}

static void test_server_api_a_fixed_kwarg_cannot_be_overridden(void **state)
{
    (void)state;
    json_t *base = json_pack("{s:i,s:s}", "x", 1, "y", "INPUT_BY_CALLER");
    json_t *in = json_pack("{s:i,s:i}", "y", 2, "x", 99);
    const char *bad = NULL;
    assert_int_equal(api_kwargs_merge(base, in, &bad), -1);
    assert_string_equal(bad, "x");
    /* nothing was merged */
    assert_int_equal(json_integer_value(json_object_get(base, "x")), 1);
    assert_string_equal(json_string_value(json_object_get(base, "y")), "INPUT_BY_CALLER");
    json_decref(base);
    json_decref(in);
}

static void test_server_api_content_type_short_names(void **state)
{
    (void)state;
    assert_string_equal(api_mime_of("json"), "application/json");
    assert_string_equal(api_mime_of("HTML"), "text/html; charset=utf-8");
    assert_string_equal(api_mime_of("png"), "image/png");
    assert_string_equal(api_mime_of("text/x-custom"), "text/x-custom");
    assert_null(api_mime_of("nosuchtype"));
    assert_null(api_mime_of(""));
    assert_string_equal(api_mime_of_filename("report.csv"), "text/csv; charset=utf-8");
    assert_string_equal(api_mime_of_filename("noext"), "application/octet-stream");
    assert_string_equal(api_mime_of_filename("a.x/y"), "application/octet-stream");
}

static void test_server_api_base64_round_trip_and_malformed(void **state)
{
    (void)state;
    static const char *vec[][2] = {{"", ""},
                                   {"f", "Zg=="},
                                   {"fo", "Zm8="},
                                   {"foo", "Zm9v"},
                                   {"foob", "Zm9vYg=="},
                                   {"fooba", "Zm9vYmE="},
                                   {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        char *e = b64_encode(vec[i][0], strlen(vec[i][0]));
        assert_string_equal(e, vec[i][1]);
        size_t n = 0;
        unsigned char *d = b64_decode(e, strlen(e), &n);
        assert_non_null(d);
        assert_int_equal(n, strlen(vec[i][0]));
        assert_memory_equal(d, vec[i][0], n);
        free(d);
        free(e);
    }
    size_t n;
    assert_null(b64_decode("Zm9v!", 5, &n));
    assert_null(b64_decode("Zg==Zg", 6, &n));
}

static void test_server_api_md5_rfc1321_vectors(void **state)
{
    (void)state;
    static const char *vec[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"}};
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        char out[33];
        md5_hex(vec[i][0], strlen(vec[i][0]), out);
        assert_string_equal(out, vec[i][1]);
    }
}

/* RFC 2617 3.5's example, which python-requests' HTTPDigestAuth reproduces. */
static void test_server_api_digest_response_rfc2617_example(void **state)
{
    (void)state;
    char out[33];
    apiauth_digest_response("Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
                            "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001",
                            "0a4f113b", "auth", out);
    assert_string_equal(out, "6629fae49393a05397450978507c4ef1");
    json_t *kv = apiauth_parse_kv(
        "username=\"Mufasa\", realm=\"testrealm@host.com\", "
        "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, "
        "nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", "
        "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
    assert_non_null(kv);
    assert_string_equal(json_string_value(json_object_get(kv, "username")), "Mufasa");
    assert_string_equal(json_string_value(json_object_get(kv, "qop")), "auth");
    assert_string_equal(json_string_value(json_object_get(kv, "nc")), "00000001");
    json_decref(kv);
    assert_null(apiauth_parse_kv("username=\"unterminated"));
    assert_null(apiauth_parse_kv("novalue"));
}

static void test_server_api_throttling_windows(void **state)
{
    (void)state;
    assert_int_equal(throttle_rule_seconds("bySecond"), 1);
    assert_int_equal(throttle_rule_seconds("byMinute"), 60);
    assert_int_equal(throttle_rule_seconds("byHour"), 3600);
    assert_int_equal(throttle_rule_seconds("byDay"), 86400);
    assert_int_equal(throttle_rule_seconds("byWeek"), 0);
}

/* eta/expires "* 1000" must not overflow: huge times are refused. */
static void test_server_api_eta_bounds_refuse_overflow(void **state)
{
    (void)state;
    json_t *v = json_integer(9223372036854775LL);
    assert_int_equal(parse_time_ms(v), -1);
    json_decref(v);
    v = json_real(1e300);
    assert_int_equal(parse_time_ms(v), -1);
    json_decref(v);
    assert_int_equal(parse_time_str_ms("99999999999999999999"), -1);
    v = json_integer(253402300799LL);
    assert_int_equal(parse_time_ms(v), 253402300799000LL);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_api_placeholders_take_the_callers_value_or_vanish),
        cmocka_unit_test(test_server_api_a_fixed_kwarg_cannot_be_overridden),
        cmocka_unit_test(test_server_api_content_type_short_names),
        cmocka_unit_test(test_server_api_base64_round_trip_and_malformed),
        cmocka_unit_test(test_server_api_md5_rfc1321_vectors),
        cmocka_unit_test(test_server_api_digest_response_rfc2617_example),
        cmocka_unit_test(test_server_api_throttling_windows),
        cmocka_unit_test(test_server_api_eta_bounds_refuse_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
