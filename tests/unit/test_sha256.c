/* SHA-256 against the FIPS 180-2 / NIST example vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sha256.h"

static void check(const char *msg, size_t len, const char *want)
{
    char out[65];
    sha256_hex(msg, len, out);
    assert_string_equal(out, want);
}

static void test_sha256_empty(void **state)
{
    (void)state;
    check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_abc(void **state)
{
    (void)state;
    check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_448_bits(void **state)
{
    (void)state;
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m), 56);
    check(m, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_896_bits(void **state)
{
    (void)state;
    const char *m =
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
        "klmnopqrlmnopqrsmnopqrstnopqrstu";
    check(m, strlen(m), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_sha256_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *m = malloc(n);
    assert_non_null(m);
    memset(m, 'a', n);
    check(m, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(m);
}

/* Lengths around the 55/56/64-byte padding boundaries, cross-checked
 * against the raw digest so both entry points agree. */
static void test_sha256_raw_matches_hex(void **state)
{
    (void)state;
    static const char hex[] = "0123456789abcdef";
    char buf[130];
    memset(buf, 'x', sizeof(buf));
    for (size_t len = 50; len <= 130; len++) {
        uint8_t d[32];
        char h[65], h2[65];
        sha256(buf, len, d);
        for (int i = 0; i < 32; i++) {
            h2[2 * i] = hex[d[i] >> 4];
            h2[2 * i + 1] = hex[d[i] & 15];
        }
        h2[64] = '\0';
        sha256_hex(buf, len, h);
        assert_string_equal(h, h2);
    }
    /* 55 and 56 bytes: one vs two padding blocks. */
    check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 55,
          "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 56,
          "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_empty),     cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_sha256_448_bits),  cmocka_unit_test(test_sha256_896_bits),
        cmocka_unit_test(test_sha256_million_a), cmocka_unit_test(test_sha256_raw_matches_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
