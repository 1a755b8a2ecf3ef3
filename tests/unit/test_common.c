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

/* Cutting text to a byte budget keeps it UTF-8: a multi-byte character at
 * the boundary goes whole or not at all, and an invalid byte ends it. */
Test(common, utf8_prefix_table)
{
    static const struct {
        const char *s;
        size_t max, want;
    } rows[] = {
        {"abc", 3, 3},
        {"abc", 2, 2},
        {"abc", 0, 0},
        {"a\xc3\xa9", 3, 3},           /* é fits */
        {"a\xc3\xa9", 2, 1},           /* é (2 bytes) does not: cut before it */
        {"ab\xe2\x82\xac", 4, 2},      /* € (3 bytes) cut before, not inside */
        {"ab\xe2\x82\xac", 5, 5},      /* € fits exactly */
        {"\xf0\x9f\x8e\x81x", 3, 0},   /* a 4-byte emoji first: nothing fits */
        {"\xf0\x9f\x8e\x81x", 4, 4},   /* the emoji alone */
        {"ok\xff rest", 10, 2},        /* an invalid byte ends the text */
        {"ok\xc3", 10, 2},             /* a sequence cut short at the end */
        {"ok\xed\xa0\x80", 10, 2},     /* a surrogate */
        {"ok\xc0\x80", 10, 2},         /* an overlong NUL */
        {"ok\xf4\x90\x80\x80", 10, 2}, /* past U+10FFFF */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(rows); i++)
        cr_expect_eq(patron_utf8_prefix(rows[i].s, strlen(rows[i].s), rows[i].max), rows[i].want,
                     "row %zu", i);
    /* a 256-byte slot and a title of é's: 256 is even, so 128 of them; one
     * byte less and the last é goes whole */
    char title[600];
    for (size_t i = 0; i < 300; i++)
        memcpy(title + 2 * i, "\xc3\xa9", 2);
    cr_expect_eq(patron_utf8_prefix(title, 600, 256), 256);
    cr_expect_eq(patron_utf8_prefix(title, 600, 255), 254);
}
