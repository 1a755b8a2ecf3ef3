/*
 * The one integer parser (num.h), table by table: canonical decimals in,
 * everything else out, at every bound.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../support/leak_check.h"
#include "patron/num.h"

PATRON_LEAK_CHECKED_SUITE(num);

struct i64_case {
    const char *text;
    int64_t min, max;
    int rc;
    int64_t want;
};

Test(num, i64_table)
{
    static const struct i64_case cases[] = {
        {"0", INT64_MIN, INT64_MAX, 0, 0},
        {"7", INT64_MIN, INT64_MAX, 0, 7},
        {"-7", INT64_MIN, INT64_MAX, 0, -7},
        {"9223372036854775807", INT64_MIN, INT64_MAX, 0, INT64_MAX},
        {"-9223372036854775808", INT64_MIN, INT64_MAX, 0, INT64_MIN},
        {"9223372036854775808", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"-9223372036854775809", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"18446744073709551616", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"-", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"-0", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"+5", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {" 5", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"5 ", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"05", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"00", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"--5", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"5x", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"0x10", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"1e3", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"1.0", INT64_MIN, INT64_MAX, PATRON_EINVAL, 0},
        {"100", 1, 100, 0, 100},
        {"101", 1, 100, PATRON_EINVAL, 0},
        {"1", 1, 100, 0, 1},
        {"0", 1, 100, PATRON_EINVAL, 0},
        {"-1", 0, 10, PATRON_EINVAL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        const struct i64_case *c = &cases[i];
        int64_t got = 12345;
        int rc = patron_parse_i64(c->text, strlen(c->text), c->min, c->max, &got);
        cr_expect_eq(rc, c->rc, "'%s': rc %d, want %d", c->text, rc, c->rc);
        if (c->rc == 0)
            cr_expect_eq(got, c->want, "'%s': %lld", c->text, (long long)got);
        else
            cr_expect_eq(got, 12345, "'%s': *out changed on failure", c->text);
    }
}

Test(num, i64_reads_only_len_bytes)
{
    int64_t v;
    cr_assert_eq(patron_parse_i64("42|x", 2, 0, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(patron_parse_i64("4\0002", 3, 0, 1000, &v), PATRON_EINVAL, "a NUL inside");
    cr_assert_eq(patron_parse_i64(NULL, 0, 0, 1, &v), PATRON_EINVAL);
    cr_assert_eq(patron_parse_i64_str(NULL, 0, 1, &v), PATRON_EINVAL);
    cr_assert_eq(patron_parse_i64_str("-12", -20, 0, &v), 0);
    cr_assert_eq(v, -12);
}

Test(num, u64_table)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", PATRON_EINVAL, 0},
        {"99999999999999999999", PATRON_EINVAL, 0},
        {"-1", PATRON_EINVAL, 0},
        {"+1", PATRON_EINVAL, 0},
        {"01", PATRON_EINVAL, 0},
        {"123456789012345678901", PATRON_EINVAL, 0},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++) {
        uint64_t got = 0;
        int rc = patron_parse_u64(cases[i].text, strlen(cases[i].text), 0, UINT64_MAX, &got);
        cr_expect_eq(rc, cases[i].rc, "'%s'", cases[i].text);
        if (rc == 0)
            cr_expect_eq(got, cases[i].want, "'%s'", cases[i].text);
    }
    uint64_t v;
    cr_assert_eq(patron_parse_u64("5", 1, 6, 10, &v), PATRON_EINVAL, "below min");
}
