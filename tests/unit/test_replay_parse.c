/* The pure parsing of patron-replay (services/tools/replay/parse.h): CSV,
 * exact prices, strict integers, Europe/London time, the key of an event.
 * Expected times come from Python's zoneinfo (the oracle's source of truth),
 * not from the rule the code implements. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../services/tools/replay/parse.h"
#include "patron/v1/catalog.pb-c.h"
#include "patron/v1/event.pb-c.h"
#include "../support/leak_check.h"

PATRON_LEAK_CHECKED_SUITE(replay_parse);

/* ---- CSV ---------------------------------------------------------------- */

#define F_MAX 9
static const struct {
    const char *in;
    int rc; /* fields, or a PATRON_E* code */
    const char *fields[F_MAX];
} csv_cases[] = {
    {"a,b,c", 3, {"a", "b", "c"}},
    {"", 1, {""}},
    {",", 2, {"", ""}},
    {"a,", 2, {"a", ""}},
    {"\"AIRLINE LOUNGE,METAL SIGN\",2", 2, {"AIRLINE LOUNGE,METAL SIGN", "2"}},
    {"x,\"RECORD FRAME 7\"\" SINGLE\",y", 3, {"x", "RECORD FRAME 7\" SINGLE", "y"}},
    {"\"\"", 1, {""}},
    {"\"\"\"\"", 1, {"\""}},
    {"\"multi\nline\",z", 2, {"multi\nline", "z"}},
    {"ab\"c,d", 2, {"ab\"c", "d"}}, /* a quote inside an unquoted field is literal */
    {"\"unterminated", PATRON_EINVAL, {0}},
    {"\"ab\"c,d", PATRON_EINVAL, {0}}, /* text after the closing quote */
    {"\"a\" ,b", PATRON_EINVAL, {0}},
    {"1,2,3,4,5,6,7,8,9", 9, {"1", "2", "3", "4", "5", "6", "7", "8", "9"}},
    {"1,2,3,4,5,6,7,8,9,10", PATRON_ETOOBIG, {0}},
    {",,,,,,,,,", PATRON_ETOOBIG, {0}},
};

Test(replay_parse, csv_split_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(csv_cases); i++) {
        char buf[128];
        size_t len = strlen(csv_cases[i].in);
        memcpy(buf, csv_cases[i].in, len + 1);
        struct replay_field f[F_MAX];
        int rc = replay_csv_split(buf, len, f, F_MAX);
        cr_assert_eq(rc, csv_cases[i].rc, "case %zu (%s): rc %d", i, csv_cases[i].in, rc);
        for (int k = 0; k < rc; k++) {
            const char *want = csv_cases[i].fields[k];
            cr_assert_eq(f[k].len, strlen(want), "case %zu field %d", i, k);
            cr_assert(memcmp(f[k].s, want, f[k].len) == 0, "case %zu field %d", i, k);
        }
    }
}

Test(replay_parse, csv_split_respects_len_not_nul)
{
    /* Bytes after len are not part of the record; a NUL inside is a byte. */
    char buf[] = "a,b\0c,d";
    struct replay_field f[4];
    cr_assert_eq(replay_csv_split(buf, 5, f, 4), 2);
    cr_assert_eq(f[1].len, 3);
    cr_assert(memcmp(f[1].s, "b\0c", 3) == 0);
}

Test(replay_parse, csv_open_quote)
{
    cr_assert(replay_csv_open_quote("a,\"b", 4));
    cr_assert_not(replay_csv_open_quote("a,\"b\"", 5));
    cr_assert_not(replay_csv_open_quote("\"x\"\"y\"", 6));
    cr_assert_not(replay_csv_open_quote("", 0));
}

/* Garbage never reads outside the record or loops: every byte pattern of a
 * short record returns a sane count. */
Test(replay_parse, csv_split_garbage)
{
    static const char alphabet[] = {',', '"', 'a', '\n', '\0', '\r'};
    char buf[6];
    struct replay_field f[8];
    for (unsigned code = 0; code < 6 * 6 * 6 * 6 * 6 * 6; code++) {
        unsigned c = code;
        for (int i = 0; i < 6; i++, c /= 6)
            buf[i] = alphabet[c % 6];
        int rc = replay_csv_split(buf, sizeof(buf), f, PATRON_ARRAY_LEN(f));
        cr_assert(rc == PATRON_EINVAL || rc == PATRON_ETOOBIG || (rc >= 1 && rc <= 7), "rc %d", rc);
        for (int k = 0; k < rc; k++)
            cr_assert(f[k].s >= buf && f[k].s + f[k].len <= buf + sizeof(buf));
    }
}

/* ---- prices and integers ---------------------------------------------------- */

static const struct {
    const char *in;
    int rc;
    int64_t cents;
    bool positive;
} price_cases[] = {
    {"2.55", 0, 255, true},
    {"0.001", 0, 0, true}, /* positive, worth nothing */
    {"0.005", 0, 1, true}, /* half a cent rounds away from zero */
    {"0.004", 0, 0, true},
    {"0.125", 0, 13, true},
    {"1.2345", 0, 123, true},
    {"1.235", 0, 124, true},
    {"1.2349999", 0, 123, true},
    {"-0.125", 0, -13, false},
    {"-11062.06", 0, -1106206, false},
    {"11062.06", 0, 1106206, true},
    {"0", 0, 0, false},
    {"0.000", 0, 0, false},
    {"-0", 0, 0, false},
    {"007.50", 0, 750, true},
    {"3", 0, 300, true},
    {"999999999999999.999", 0, INT64_C(100000000000000000), true},
    {"1000000000000000", PATRON_ETOOBIG, 0, false},
    {"", PATRON_EINVAL, 0, false},
    {"-", PATRON_EINVAL, 0, false},
    {".5", PATRON_EINVAL, 0, false},
    {"1.", PATRON_EINVAL, 0, false},
    {"+1", PATRON_EINVAL, 0, false},
    {"1e3", PATRON_EINVAL, 0, false},
    {"1,5", PATRON_EINVAL, 0, false},
    {" 1", PATRON_EINVAL, 0, false},
    {"1 ", PATRON_EINVAL, 0, false},
    {"1.2.3", PATRON_EINVAL, 0, false},
    {"abc", PATRON_EINVAL, 0, false},
    {"--1", PATRON_EINVAL, 0, false},
};

Test(replay_parse, price_cents_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(price_cases); i++) {
        int64_t cents = -777;
        bool positive = false;
        const char *in = price_cases[i].in;
        int rc = replay_price_cents(in, strlen(in), &cents, &positive);
        cr_assert_eq(rc, price_cases[i].rc, "%s: rc %d", in, rc);
        if (rc == 0) {
            cr_assert_eq(cents, price_cases[i].cents, "%s: %lld cents", in, (long long)cents);
            cr_assert_eq(positive, price_cases[i].positive, "%s: positive", in);
        }
    }
}

Test(replay_parse, price_reads_only_len_bytes)
{
    int64_t cents;
    bool positive;
    cr_assert_eq(replay_price_cents("2.559", 4, &cents, &positive), 0);
    cr_assert_eq(cents, 255);
}

static const struct {
    const char *in;
    int rc;
    int32_t v;
} int_cases[] = {
    {"6", 0, 6},
    {"-12", 0, -12},
    {"0", 0, 0},
    {"-0", 0, 0},
    {"0007", 0, 7},
    {"80995", 0, 80995},
    {"2147483647", 0, INT32_MAX},
    {"-2147483648", 0, INT32_MIN},
    {"2147483648", PATRON_ETOOBIG, 0},
    {"-2147483649", PATRON_ETOOBIG, 0},
    {"99999999999999999999999", PATRON_ETOOBIG, 0},
    {"", PATRON_EINVAL, 0},
    {"-", PATRON_EINVAL, 0},
    {"+3", PATRON_EINVAL, 0},
    {"3.0", PATRON_EINVAL, 0},
    {" 3", PATRON_EINVAL, 0},
    {"3x", PATRON_EINVAL, 0},
    {"0x10", PATRON_EINVAL, 0},
    /* malformed wins over too big, however many digits come first (fuzz_replay_csv) */
    {"5479618254796\xff", PATRON_EINVAL, 0},
    {"-99999999999999999999 ", PATRON_EINVAL, 0},
    {"99999999999-", PATRON_EINVAL, 0},
};

Test(replay_parse, int32_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(int_cases); i++) {
        int32_t v = 12345;
        const char *in = int_cases[i].in;
        int rc = replay_parse_int32(in, strlen(in), &v);
        cr_assert_eq(rc, int_cases[i].rc, "%s: rc %d", in, rc);
        if (rc == 0)
            cr_assert_eq(v, int_cases[i].v, "%s: %d", in, v);
    }
}

/* ---- time ------------------------------------------------------------------ */

/* UK clock changes in UTC epoch ms, from Python's zoneinfo (Europe/London). */
static const struct {
    int year;
    int64_t spring, autumn;
} uk_changes[] = {
    {1996, INT64_C(828234000000), INT64_C(846378000000)},
    {1997, INT64_C(859683600000), INT64_C(877827600000)},
    {1998, INT64_C(891133200000), INT64_C(909277200000)},
    {1999, INT64_C(922582800000), INT64_C(941331600000)},
    {2000, INT64_C(954032400000), INT64_C(972781200000)},
    {2001, INT64_C(985482000000), INT64_C(1004230800000)},
    {2002, INT64_C(1017536400000), INT64_C(1035680400000)},
    {2003, INT64_C(1048986000000), INT64_C(1067130000000)},
    {2004, INT64_C(1080435600000), INT64_C(1099184400000)},
    {2005, INT64_C(1111885200000), INT64_C(1130634000000)},
    {2006, INT64_C(1143334800000), INT64_C(1162083600000)},
    {2007, INT64_C(1174784400000), INT64_C(1193533200000)},
    {2008, INT64_C(1206838800000), INT64_C(1224982800000)},
    {2009, INT64_C(1238288400000), INT64_C(1256432400000)},
    {2010, INT64_C(1269738000000), INT64_C(1288486800000)},
    {2011, INT64_C(1301187600000), INT64_C(1319936400000)},
    {2012, INT64_C(1332637200000), INT64_C(1351386000000)},
    {2013, INT64_C(1364691600000), INT64_C(1382835600000)},
    {2014, INT64_C(1396141200000), INT64_C(1414285200000)},
    {2015, INT64_C(1427590800000), INT64_C(1445734800000)},
    {2016, INT64_C(1459040400000), INT64_C(1477789200000)},
    {2017, INT64_C(1490490000000), INT64_C(1509238800000)},
    {2018, INT64_C(1521939600000), INT64_C(1540688400000)},
    {2019, INT64_C(1553994000000), INT64_C(1572138000000)},
    {2020, INT64_C(1585443600000), INT64_C(1603587600000)},
    {2021, INT64_C(1616893200000), INT64_C(1635642000000)},
    {2022, INT64_C(1648342800000), INT64_C(1667091600000)},
    {2023, INT64_C(1679792400000), INT64_C(1698541200000)},
    {2024, INT64_C(1711846800000), INT64_C(1729990800000)},
    {2025, INT64_C(1743296400000), INT64_C(1761440400000)},
    {2026, INT64_C(1774746000000), INT64_C(1792890000000)},
    {2027, INT64_C(1806195600000), INT64_C(1824944400000)},
    {2028, INT64_C(1837645200000), INT64_C(1856394000000)},
    {2029, INT64_C(1869094800000), INT64_C(1887843600000)},
    {2030, INT64_C(1901149200000), INT64_C(1919293200000)},
    {2031, INT64_C(1932598800000), INT64_C(1950742800000)},
    {2032, INT64_C(1964048400000), INT64_C(1982797200000)},
    {2033, INT64_C(1995498000000), INT64_C(2014246800000)},
    {2034, INT64_C(2026947600000), INT64_C(2045696400000)},
    {2035, INT64_C(2058397200000), INT64_C(2077146000000)},
    {2036, INT64_C(2090451600000), INT64_C(2108595600000)},
    {2037, INT64_C(2121901200000), INT64_C(2140045200000)},
    {2038, INT64_C(2153350800000), INT64_C(2172099600000)},
    {2039, INT64_C(2184800400000), INT64_C(2203549200000)},
    {2040, INT64_C(2216250000000), INT64_C(2234998800000)},
};

Test(replay_parse, uk_clock_changes_match_zoneinfo)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(uk_changes); i++) {
        int y = uk_changes[i].year;
        int64_t s = uk_changes[i].spring, a = uk_changes[i].autumn;
        cr_assert_eq(replay_uk_change_ms(y, 3), s, "%d spring", y);
        cr_assert_eq(replay_uk_change_ms(y, 10), a, "%d autumn", y);
        cr_assert_not(replay_london_is_bst(s - 1), "%d", y);
        cr_assert(replay_london_is_bst(s), "%d", y);
        cr_assert(replay_london_is_bst(a - 1), "%d", y);
        cr_assert_not(replay_london_is_bst(a), "%d", y);
    }
}

/* Local wall-clock text -> UTC ms, as zoneinfo computes it with fold=0. */
static const struct {
    const char *local;
    int64_t utc_ms;
} london_cases[] = {
    {"2010-12-01 08:26:00", INT64_C(1291191960000)},
    {"2011-06-01 10:00:00", INT64_C(1306918800000)},
    {"2011-03-27 00:59:59", INT64_C(1301187599000)},
    {"2011-03-27 01:00:00", INT64_C(1301187600000)}, /* the hour that does not exist */
    {"2011-03-27 01:30:00", INT64_C(1301189400000)},
    {"2011-03-27 01:59:59", INT64_C(1301191199000)},
    {"2011-03-27 02:00:00", INT64_C(1301187600000)},
    {"2011-10-30 00:59:59", INT64_C(1319932799000)},
    {"2011-10-30 01:00:00", INT64_C(1319932800000)}, /* the hour that happens twice */
    {"2011-10-30 01:59:59", INT64_C(1319936399000)},
    {"2011-10-30 02:00:00", INT64_C(1319940000000)},
    {"2010-12-31 23:59:59", INT64_C(1293839999000)},
    {"2011-01-01 00:00:00", INT64_C(1293840000000)},
    {"2012-02-29 12:00:00", INT64_C(1330516800000)},
    {"1996-03-31 01:30:00", INT64_C(828235800000)},
    {"2000-01-01 00:00:00", INT64_C(946684800000)},
    {"2011-12-09 12:50:00", INT64_C(1323435000000)},
    {"2024-10-27 01:15:00", INT64_C(1729988100000)},
    {"2038-01-19 03:14:08", INT64_C(2147483648000)},
};

Test(replay_parse, london_datetime_table)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(london_cases); i++) {
        int64_t ms = 0;
        const char *in = london_cases[i].local;
        cr_assert_eq(replay_london_datetime_ms(in, strlen(in), &ms), 0, "%s", in);
        cr_assert_eq(ms, london_cases[i].utc_ms, "%s: %lld", in, (long long)ms);
    }
}

Test(replay_parse, london_datetime_rejects)
{
    static const char *bad[] = {
        "",
        "2011-02-29 10:00:00", /* not a leap year */
        "1900-02-29 10:00:00", /* nor is 1900 */
        "2011-13-01 10:00:00",
        "2011-00-01 10:00:00",
        "2011-04-31 10:00:00",
        "2011-01-00 10:00:00",
        "2011-06-01 24:00:00",
        "2011-06-01 10:60:00",
        "2011-06-01 10:00:60",
        "0000-06-01 10:00:00",
        "2011-1-01 10:00:00",
        "2011-06-01T10:00:00",
        "2011-06-01 10:00:00Z",
        "2011-06-01 10:00",
        "2011/06/01 10:00:00",
        "2011-06-01 1a:00:00",
        "-011-06-01 10:00:00",
        "2011-06-01 10:00:0 ",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        int64_t ms = 42;
        cr_assert_eq(replay_london_datetime_ms(bad[i], strlen(bad[i]), &ms), PATRON_EINVAL, "%s",
                     bad[i]);
        cr_assert_eq(ms, 42, "%s: output touched", bad[i]);
    }
}

/* The exports' forms of one InvoiceDate each (data/README.md, "Other
 * exports"): the same instant as the ISO form. */
Test(replay_parse, invoice_date_forms)
{
    static const struct {
        const char *text, *iso;
    } same[] = {
        {"2010-12-01 08:26:00", "2010-12-01 08:26:00"},
        {"2010-12-01 08:26", "2010-12-01 08:26:00"},
        {"12/1/2010 8:26", "2010-12-01 08:26:00"},
        {"12/01/2010 08:26", "2010-12-01 08:26:00"},
        {"12/1/2010 8:26:59", "2010-12-01 08:26:59"},
        {"12/11/2010 10:26", "2010-12-11 10:26:00"},
        {"2/29/2012 23:59", "2012-02-29 23:59:00"},
        {"10/30/2011 1:30", "2011-10-30 01:30:00"}, /* the hour that happens twice: BST */
        {"3/27/2011 1:30", "2011-03-27 01:30:00"},  /* the hour that does not exist */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(same); i++) {
        int64_t got = 0, want = 0;
        cr_assert_eq(replay_london_datetime_ms(same[i].iso, strlen(same[i].iso), &want), 0);
        cr_assert_eq(replay_invoice_date_ms(same[i].text, strlen(same[i].text), &got), 0, "%s",
                     same[i].text);
        cr_assert_eq(got, want, "%s: %lld, want %lld", same[i].text, (long long)got,
                     (long long)want);
    }
    static const char *bad[] = {
        "",
        "2010-12-01",
        "2010-12-01 8:26",
        "2010-12-01 08:26:0",
        "2010-12-01T08:26",
        "13/1/2010 8:26",  /* month first: no 13th month */
        "2/30/2012 10:00", /* nor a 30th of February */
        "12/1/10 8:26",    /* a two-digit year */
        "12/1/2010 8:6",
        "12/1/2010 24:00",
        "12/1/2010 8:26:60",
        "12/1/2010 8:26:0",
        "12/1/2010  8:26",
        "123/1/2010 8:26",
        "12/1/2010 8:26 PM",
        "12-1-2010 8:26",
        "1/1/2010 8:26:00:00",
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++) {
        int64_t ms = 42;
        cr_assert_eq(replay_invoice_date_ms(bad[i], strlen(bad[i]), &ms), PATRON_EINVAL, "%s",
                     bad[i]);
        cr_assert_eq(ms, 42, "%s: output touched", bad[i]);
    }
}

Test(replay_parse, customer_id_drops_a_float_zero)
{
    static const struct {
        const char *in;
        size_t keep;
    } cases[] = {
        {"13085.0", 5}, {"17850", 5}, {"1.0", 1},      {".0", 2}, {"13085.00", 8},
        {"13085.5", 7}, {"a13.0", 5}, {"13085.0 ", 8}, {"", 0},   {"0.0", 1},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++)
        cr_assert_eq(replay_customer_id_len(cases[i].in, strlen(cases[i].in)), cases[i].keep, "%s",
                     cases[i].in);
}

Test(replay_parse, london_date_is_the_local_midnight)
{
    int64_t ms;
    cr_assert_eq(replay_london_date_ms("2011-10-01", 10, &ms), 0);
    cr_expect_eq(ms, 1317423600000LL, "BST: 2011-09-30T23:00Z");
    cr_assert_eq(replay_london_date_ms("2011-12-01", 10, &ms), 0);
    cr_expect_eq(ms, 1322697600000LL, "GMT");
    const char *bad[] = {"2011-10-1", "2011-13-01",  "2011-02-30",
                         "20111001",  "2011-10-01 ", "2011-10-01x",
                         "",          "abcd-ef-gh",  "2011-10-01 00:00:00"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(bad); i++)
        cr_expect_eq(replay_london_date_ms(bad[i], strlen(bad[i]), &ms), PATRON_EINVAL, "%s",
                     bad[i]);
}

Test(replay_parse, civil_days_round_trip)
{
    cr_assert_eq(replay_days_from_civil(1970, 1, 1), 0);
    cr_assert_eq(replay_days_from_civil(2000, 3, 1), 11017);
    cr_assert_eq(replay_days_from_civil(1969, 12, 31), -1);
    int64_t prev = replay_days_from_civil(1599, 12, 31);
    for (int64_t y = 1600; y <= 2400; y++)
        for (int m = 1; m <= 12; m++)
            for (int d = 1; d <= replay_days_in_month(y, m); d++) {
                int64_t z = replay_days_from_civil(y, m, d);
                cr_assert_eq(z, prev + 1, "%lld-%d-%d", (long long)y, m, d);
                cr_assert_eq(replay_year_of_days(z), y, "%lld-%d-%d", (long long)y, m, d);
                prev = z;
            }
}

Test(replay_parse, bst_before_1970_does_not_crash)
{
    /* Negative instants take the floor division path; the rule still holds. */
    int64_t summer_1969 = replay_days_from_civil(1969, 7, 1) * REPLAY_MS_PER_DAY;
    int64_t winter_1969 = replay_days_from_civil(1969, 1, 1) * REPLAY_MS_PER_DAY;
    cr_assert(replay_london_is_bst(summer_1969));
    cr_assert_not(replay_london_is_bst(winter_1969));
    cr_assert_not(replay_london_is_bst(-1)); /* 1969-12-31 23:59:59.999 */
}

Test(replay_parse, category_is_three_bytes)
{
    cr_assert_eq(replay_category_len(strlen("85123A")), 3);
    cr_assert_eq(replay_category_len(strlen("POST")), 3);
    cr_assert_eq(replay_category_len(strlen("M")), 1);
    cr_assert_eq(replay_category_len(0), 0);
}

/* ---- the key of an encoded event ----------------------------------------------- */

static size_t encode(uint8_t *buf, size_t cap, const char *event_id, const char *customer,
                     bool with_kind)
{
    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__ProductView view = PATRON__V1__PRODUCT_VIEW__INIT;
    view.item_id = "85123A";
    ev.event_id = (char *)event_id;
    ev.customer_id = (char *)customer;
    ev.occurred_at_ms = 1291191960000;
    if (with_kind) {
        ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
        ev.view = &view;
    }
    size_t n = patron__v1__event__get_packed_size(&ev);
    cr_assert_leq(n, cap);
    return patron__v1__event__pack(&ev, buf);
}

Test(replay_parse, event_key_found)
{
    uint8_t buf[256];
    size_t n = encode(buf, sizeof(buf), "oi-536365", "17850", true);
    const char *id;
    size_t len;
    cr_assert_eq(replay_event_key(buf, n, &id, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(id, "17850", 5) == 0);
}

Test(replay_parse, event_key_not_a_keyable_event)
{
    uint8_t buf[256];
    const char *id;
    size_t len;
    size_t n = encode(buf, sizeof(buf), "e1", "", true);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), PATRON_ENOTFOUND, "empty customer");
    n = encode(buf, sizeof(buf), "e1", "17850", false);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), PATRON_ENOTFOUND, "no kind");
    char long_id[PATRON_ID_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    n = encode(buf, sizeof(buf), "e1", long_id, true);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), PATRON_ENOTFOUND, "id too long");
    long_id[PATRON_ID_MAX] = '\0';
    n = encode(buf, sizeof(buf), "e1", long_id, true);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), 0, "an id of exactly the maximum");
    cr_assert_eq(replay_event_key(buf, 0, &id, &len), PATRON_ENOTFOUND, "empty message");
}

/* A visitor's event is keyed by its anonymous id; an Identify by its
 * customer (field 19 is a kind). */
Test(replay_parse, event_key_of_visitors_and_identify)
{
    uint8_t buf[256];
    const char *id;
    size_t len;
    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__ProductView view = PATRON__V1__PRODUCT_VIEW__INIT;
    view.item_id = "85123A";
    ev.event_id = "e1";
    ev.anonymous_id = "cookie-1";
    ev.occurred_at_ms = 1291191960000;
    ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
    ev.view = &view;
    size_t n = patron__v1__event__pack(&ev, buf);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), 0);
    cr_assert_eq(len, 8);
    cr_assert(memcmp(id, "cookie-1", 8) == 0);

    Patron__V1__Identify identify = PATRON__V1__IDENTIFY__INIT;
    identify.anonymous_id = "cookie-1";
    ev.customer_id = "17850";
    ev.kind_case = PATRON__V1__EVENT__KIND_IDENTIFY;
    ev.identify = &identify;
    n = patron__v1__event__pack(&ev, buf);
    cr_assert_eq(replay_event_key(buf, n, &id, &len), 0);
    cr_assert_eq(len, 5, "the customer's, when it has one");
    cr_assert(memcmp(id, "17850", 5) == 0);
}

/* What `--garbage` makes must never pass for an event: every truncation of
 * a real event, and a message of another type. */
Test(replay_parse, event_key_rejects_truncations)
{
    uint8_t buf[256];
    const char *id;
    size_t len;
    size_t n = encode(buf, sizeof(buf), "oi-536365", "17850", true);
    for (size_t cut = 1; cut < n; cut++)
        cr_assert_neq(replay_event_key(buf, cut, &id, &len), 0, "cut %zu of %zu", cut, n);
}

Test(replay_parse, event_key_rejects_other_types)
{
    Patron__V1__ItemUpdate u = PATRON__V1__ITEM_UPDATE__INIT;
    u.item_id = "garbage-2";
    u.category = "garbage";
    u.price_cents = 100;
    u.in_stock = 1;
    uint8_t buf[128];
    cr_assert_leq(patron__v1__item_update__get_packed_size(&u), sizeof(buf));
    size_t n = patron__v1__item_update__pack(&u, buf);
    const char *id;
    size_t len;
    cr_assert_eq(replay_event_key(buf, n, &id, &len), PATRON_ENOTFOUND);
}

Test(replay_parse, event_key_bad_wire_format)
{
    const char *id;
    size_t len;
    static const struct {
        uint8_t bytes[12];
        size_t len;
        int rc;
    } cases[] = {
        {{0x07}, 1, PATRON_EINVAL},            /* field 0 */
        {{0x0b}, 1, PATRON_EINVAL},            /* wire type 3 */
        {{0x0e}, 1, PATRON_EINVAL},            /* wire type 6 */
        {{0x12, 0x7f, 'a'}, 3, PATRON_EINVAL}, /* length past end */
        {{0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 11, PATRON_EINVAL},
        {{0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 11, PATRON_EINVAL},
        {{0x09, 1, 2, 3}, 4, PATRON_EINVAL},                     /* fixed64 cut */
        {{0x0d, 1, 2}, 3, PATRON_EINVAL},                        /* fixed32 cut */
        {{0x12, 1, 'k', 0x52, 0x00, 0x07}, 6, PATRON_EINVAL},    /* good, then a bad tag */
        {{0x10, 0x05, 0x52, 0x00}, 4, PATRON_ENOTFOUND},         /* field 2 as a varint */
        {{0x12, 1, 'k', 0x50, 0x01}, 5, PATRON_ENOTFOUND},       /* field 10 as a varint */
        {{0x12, 1, 'k', 0xa2, 0x01, 0x00}, 6, PATRON_ENOTFOUND}, /* field 20: not a kind */
        {{0x1d, 1, 2, 3, 4, 0x12, 1, 'k', 0x52, 0x00}, 10, 0},   /* fixed32 skipped */
        {{0x52, 0x00, 0x12, 1, 'k'}, 5, 0},                      /* fields in any order */
        {{0x12, 1, 'a', 0x12, 1, 'b', 0x92, 0x01, 0x00}, 9, 0},  /* the last id wins; field 18 */
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(cases); i++)
        cr_assert_eq(replay_event_key(cases[i].bytes, cases[i].len, &id, &len), cases[i].rc,
                     "case %zu", i);
    cr_assert_eq(replay_event_key(cases[14].bytes, cases[14].len, &id, &len), 0);
    cr_assert_eq(*id, 'b');
}

/* Random bytes never crash the walk, and only a real kind makes a key. */
Test(replay_parse, event_key_random_bytes)
{
    uint8_t buf[64];
    uint64_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + (size_t)(x % sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            buf[i] = (uint8_t)(x >> 56);
        }
        const char *id = NULL;
        size_t len = 0;
        if (replay_event_key(buf, n, &id, &len) == 0)
            cr_assert(id >= (const char *)buf && id + len <= (const char *)buf + n && len > 0);
    }
}
