/* The number writers of common.h: what they write must parse back as JSON
 * numbers with the stated precision. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "patron/common.h"

static const struct {
    uint64_t v;
    const char *text;
} decimals[] = {
    {0, "0"},
    {7, "7"},
    {10, "10"},
    {1234567890, "1234567890"},
    {UINT64_MAX, "18446744073709551615"},
};

Test(common, put_decimal_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(decimals); i++) {
        char buf[32];
        char *end = patron_put_decimal(buf, decimals[i].v);
        *end = '\0';
        cr_expect_str_eq(buf, decimals[i].text, "row %zu", i);
    }
}

static const struct {
    double v;
    const char *text;
} scores[] = {
    {1.0, "1"},
    {0.5, "0.5"},
    {2.25, "2.25"},
    {0.001, "0.001"},
    {0.0012345678, "0.001235"}, /* rounded to six decimals */
    {3.9999996, "4"},           /* rounding carries into the whole part */
    {123456.1234564, "123456.123456"},
    {999999999.0, "999999999"},
    {0.0, "0"}, /* below 1e-3: %.17g */
    {1e-9, "1.0000000000000001e-09"},
    {1e9, "1000000000"},
    {-0.5, "-0.5"},
};

Test(common, put_score_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(scores); i++) {
        char buf[40];
        char *end = patron_put_score(buf, scores[i].v);
        cr_assert_lt((size_t)(end - buf), 33, "row %zu", i);
        *end = '\0';
        cr_expect_str_eq(buf, scores[i].text, "row %zu", i);
    }
}

/* Every score in the six-decimal range reads back within a millionth (half,
 * plus the binary rounding of v * 1e6),
 * and the order of two scores is never reversed. */
Test(common, put_score_round_trip)
{
    unsigned seed = 7;
    double prev = 0.0, prev_back = 0.0;
    for (int i = 0; i < 100000; i++) {
        seed = seed * 1103515245u + 12345u;
        double v = 1e-3 + (double)(seed >> 8) / (1u << 24) * pow(10.0, (double)(i % 9));
        char buf[40];
        *patron_put_score(buf, v) = '\0';
        double back = strtod(buf, NULL);
        cr_assert_leq(fabs(back - v), 1e-6, "%.17g -> %s", v, buf);
        if (v > prev)
            cr_assert_geq(back, prev_back, "%.17g after %.17g", v, prev);
        prev = v;
        prev_back = back;
    }
}
